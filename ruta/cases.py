"""Case references: five characters a person can read aloud or type on a keypad."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from ruta.models import Case

#: No 0/O, 1/I/L: a reference read aloud or typed on a keypad cannot be mistaken.
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
REFERENCE_LENGTH = 5


def draw_reference() -> str:
    """Five characters of the alphabet, at random (whether a case has them is the caller's)."""
    return "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


def new_reference(session: Session) -> str:
    """A reference no case has yet (the unique index settles a simultaneous draw)."""
    while True:
        reference = draw_reference()
        if session.scalar(select(Case.id).where(Case.reference == reference)) is None:
            return reference
