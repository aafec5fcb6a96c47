"""Admin fixtures: one account per role, and logging in through the real form (CSRF and all)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, select

from admin.accounts import create_user
from ruta.db import db
from ruta.models import AuditEntry, FocalPoint, Role, User

PASSWORD = "correct horse battery staple"


@pytest.fixture()
def accounts(app: Flask) -> Iterator[dict[str, str]]:
    """email per role; the focal point account is Upala's demo focal point."""
    emails = {}
    with db.transaction() as session:
        upala = session.scalar(
            select(FocalPoint.id).where(FocalPoint.name.like("Punto focal Upala%"))
        )
        for role in Role:
            email = f"{role.value}@ruta.test"
            create_user(
                session,
                email,
                role.value,
                PASSWORD,
                country="CR" if role is Role.COORDINATOR else None,
                focal_point_id=upala if role is Role.FOCAL_POINT else None,
            )
            emails[role.value] = email
    yield emails
    with db.transaction() as session:
        session.execute(delete(User))
        session.execute(delete(AuditEntry))


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def login(client: Any, email: str, password: str = PASSWORD) -> Any:
    page = client.get("/admin/login")
    token = csrf_token(page.get_data(as_text=True))
    return client.post(
        "/admin/login", data={"email": email, "password": password, "csrf_token": token}
    )


@pytest.fixture()
def sample_case(app: Flask) -> dict[str, Any]:
    """A consented case in Upala, forwarded to Upala's demo focal point (alert not sent)."""
    from flows.services import CaseRequest
    from ruta import cases, contacts, referrals
    from ruta import policy as policies
    from ruta.models import utcnow

    now = utcnow()
    with db.transaction() as session:
        person = contacts.lock_contact(session, "+50688004455", seen_at=now)
        case, work = referrals.open_case(
            session,
            CaseRequest(
                category="health",
                municipality="cr-upala",
                safe=True,
                consent=True,
                consent_wording="main:v1:consent",
                channel="twilio",
                description="necesito un medico",
                shared_phone=False,
                safe_times="morning",
                contact_ok=True,
            ),
            contact_id=person.id,
            now=now,
            policy=policies.load(),
            reference=cases.new_reference(session),
        )
        session.flush()
        for event_id in work.outbox_ids:
            referrals.dispatch(session, event_id, now=now, policy=policies.load(), channel="twilio")
        return {"id": case.id, "reference": case.reference}
