"""What a node sees while it runs, and what it answers: the seam between engine and node kinds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flows.encoding import sms_cost
from flows.model import Flow, Node, Settings, Texts
from flows.services import Services
from flows.text import fill

#: The longest menu page on any channel: pages are laid out to it on SMS and USSD alike, so an
#: option has the same number on both.
PAGE_CHARS = 182


@dataclass(frozen=True)
class Budget:
    """How much one reply may hold on a channel, and how the channel shows menus."""

    channel: str = "sms"
    max_segments: int = 2
    max_chars: int | None = None  # USSD screens count characters, not segments
    more_number: str = "9"  # what a person sends for the next page, on every channel
    page_chars: int = PAGE_CHARS
    plain_labels: bool = False  # menu labels in GSM-7 letters (SMS: RUTA_SMS_TRANSLITERATE)
    dial_code: str = ""  # USSD: the code a person dials to start again (RUTA_USSD_CODE)

    @classmethod
    def ussd(
        cls, max_chars: int = 182, *, dial_code: str = "", page_chars: int = PAGE_CHARS
    ) -> Budget:
        return cls(
            "ussd", max_chars=max_chars, page_chars=min(page_chars, max_chars), dial_code=dial_code
        )

    def fits(self, text: str) -> bool:
        if self.max_chars is not None:
            return len(text) <= self.max_chars
        return sms_cost(text).segments <= self.max_segments


#: Variables every text may use, filled per channel: how to start again and reach the menu.
CHANNEL_WORDS = ("again", "menu_key")


def channel_words(settings: Settings, language: str, budget: Budget) -> dict[str, str]:
    """``{again}``: "Envie HOLA" by SMS, "Marque *123#" on USSD, where a keyword means nothing
    once the session has ended; ``{menu_key}``: "HOLA", or the code to dial."""
    if budget.channel == "ussd" and budget.dial_code:
        again = fill(settings.message("again_ussd", language), {"dial_code": budget.dial_code})
        return {"again": again, "menu_key": budget.dial_code}
    return {
        "again": settings.message("again", language),
        "menu_key": settings.message("menu_key", language),
    }


@dataclass(frozen=True)
class Event:
    """Something the host must persist or act on (goflow's events); the engine does no I/O."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


# Outcomes a node returns.
@dataclass(frozen=True)
class Next:
    node: str


@dataclass(frozen=True)
class Wait:
    pass


@dataclass(frozen=True)
class EnterFlow:
    key: str


@dataclass(frozen=True)
class End:
    pass


Outcome = Next | Wait | EnterFlow | End


@dataclass
class Context:
    flow: Flow
    node: Node
    language: str
    variables: dict[str, Any]
    scratch: dict[str, Any]  # per-node working state (attempts, page); reset on entering a node
    services: Services
    settings: Settings
    budget: Budget
    now: datetime
    replies: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    #: What a node works out more than once in one visit (a menu's options), by its own keys.
    memo: dict[Any, Any] = field(default_factory=dict)

    def values(self) -> dict[str, Any]:
        return {
            **self.variables,
            **channel_words(self.settings, self.language, self.budget),
            "contact.language": self.language,
        }

    def render(self, texts: Texts | str) -> str:
        template = texts if isinstance(texts, str) else self.flow.text(texts, self.language)
        # Most texts name no variable: no values to gather (a tenth of a menu's rendering).
        return fill(template, self.values()) if "{" in template else template

    def fits(self, text: str) -> bool:
        """Would ``text`` fit, after what this step has already said, in one reply?"""
        from flows.engine import REPLY_SEPARATOR

        return self.budget.fits(REPLY_SEPARATOR.join([*self.replies, text]))

    def say(self, text: str) -> None:
        if text:
            self.replies.append(text)

    def message(self, key: str) -> str:
        template = self.settings.message(key, self.language)
        return fill(template, self.values()) if "{" in template else template

    def emit(self, kind: str, **data: Any) -> None:
        self.events.append(Event(kind, data))
