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
    category: str
    municipality: str | None
    urgency: str
    consent: bool
    consent_wording: str
    description: str | None
    channel: str


class Services(Protocol):
    def municipalities(self, language: str) -> list[Choice]: ...

    def categories(self, language: str) -> list[Choice]: ...

    def municipality_name(self, code: str) -> str | None: ...

    def find_services(self, municipality: str, category: str, language: str) -> list[str]:
        """Active services as compact SMS entries (name, phone, hours), nearest first."""
        ...

    def create_case(self, request: CaseRequest) -> str:
        """Store a case and return its reference."""
        ...
