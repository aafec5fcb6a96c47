"""Cases: a person's request for help, with its reference and recorded consent.

Forwarding to focal points, acceptance and escalation are not built yet (issue 3).
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from flows.services import CaseRequest
from ruta.models import Case, CaseStatus, Municipality, utcnow

#: No 0/O, 1/I/L: a reference read aloud or typed on a keypad cannot be mistaken.
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
REFERENCE_LENGTH = 5
OPEN_STATUSES = (CaseStatus.NEW.value,)


def new_reference() -> str:
    return "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))


def open_case(session: Session, request: CaseRequest, *, contact_id: int | None) -> str:
    """Store a case and return its reference; a person with an open case gets that one back."""
    if contact_id is not None:
        existing = session.scalar(
            select(Case.reference).where(
                Case.contact_id == contact_id, Case.status.in_(OPEN_STATUSES)
            )
        )
        if existing:
            return existing
    municipality_id = (
        session.scalar(select(Municipality.id).where(Municipality.code == request.municipality))
        if request.municipality
        else None
    )
    for _ in range(10):
        case = Case(
            reference=new_reference(),
            contact_id=contact_id,
            category_code=request.category,
            municipality_id=municipality_id,
            urgency=request.urgency,
            consent_at=utcnow() if request.consent else None,
            consent_channel=request.channel if request.consent else None,
            consent_wording=request.consent_wording if request.consent else None,
            description=request.description,
        )
        try:
            with session.begin_nested():
                session.add(case)
            return case.reference
        except IntegrityError:  # a reference already taken: draw again
            continue
    raise RuntimeError("could not draw a free case reference")
