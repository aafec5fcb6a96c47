"""The interface through which flow actions reach the world (directory, cases).

The engine never imports the database: the host passes an object with these methods. Tests and
``ruta flows test`` pass the same database-backed implementation the webhooks use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True)
class CaseRequest:
    """What a person said when asking for help; ``None`` where they have not said it yet."""

    category: str
    municipality: str | None
    safe: bool
    consent: bool
    consent_wording: str
    channel: str
    description: str | None = None
    shared_phone: bool | None = None
    safe_times: str | None = None
    contact_ok: bool = False


@dataclass(frozen=True)
class Routing:
    """Who will receive a request, known before the person is asked to share it."""

    first: str  # the organisation(s) that receive it first, as the person will read it


@dataclass(frozen=True)
class OpenRequest:
    """The person's open request: its reference and its state in words."""

    reference: str
    state: str


class Services(Protocol):
    def municipalities(self, language: str) -> list[Choice]:
        """The places a person picks from first: their own country's, then one choice (value
        ``other-country``) that leads to ``other_municipalities``."""
        ...

    def other_municipalities(self, language: str) -> list[Choice]: ...

    def categories(self, language: str) -> list[Choice]: ...

    def municipality_name(self, code: str) -> str | None: ...

    def find_services(self, municipality: str, category: str, language: str) -> list[str]:
        """Active services as compact SMS entries (name, phone, hours), nearest first."""
        ...

    def route(self, municipality: str, category: str, safe: bool) -> Routing | None:
        """Who would receive a request of ``category`` in ``municipality`` now; None when
        nobody would (the unmet need is then recorded, with nothing about the person)."""
        ...

    def create_case(self, request: CaseRequest) -> str | None:
        """Store (or complete) the person's case and return its reference; None when the
        routing reaches nobody any more (nothing is stored but the unmet need)."""
        ...

    def open_request(self, language: str) -> OpenRequest | None:
        """The person's open request, if they have one."""
        ...

    def update_request(
        self, *, shared_phone: bool | None, safe_times: str | None, note: str | None
    ) -> str | None:
        """Change how the person may be contacted, or add a note, on their open request;
        its reference, or None when there is none."""
        ...

    def emergency_numbers(self, language: str = "es") -> str:
        """Emergency numbers for the country of the person's phone, in ``language``'s words."""
        ...

    def alert_topics(self, language: str) -> list[Choice]:
        """What a person may subscribe to: ``general`` (everything) then the directory's
        categories, labelled in ``language``."""
        ...

    def subscribe(self, municipality: str, topic: str, language: str) -> bool:
        """Subscribe the person to alerts for a municipality (code) and topic, in ``language``.

        Subscribing again to the same pair keeps one subscription (re-activated if it had ended).
        False when the municipality is unknown."""
        ...

    def subscriptions(self, language: str) -> list[Choice]:
        """The person's active subscriptions; each value is what ``unsubscribe`` takes."""
        ...

    def unsubscribe(self, which: str) -> int:
        """End one subscription (a value from ``subscriptions``) or ``"all"``; how many ended."""
        ...

    def ask_question(self, text: str, language: str) -> str:
        """Leave the person's question for a human, who answers by SMS from the admin; its
        reference, which the answer will name."""
        ...
