"""Admin fixtures: one account per role, and logging in through the real form (CSRF and all)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, func, select

from admin.accounts import create_user
from ruta.db import db
from ruta.models import AuditEntry, FlowDraft, FlowVersion, FocalPoint, Role, User

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


class Browser:
    """A test client each of whose requests runs in its own app context, as under a real
    server: in the fixture's shared context Flask-Login would reuse the previous request's user
    (cached on ``g``), so a second browser, or a cookie no longer valid, would pass as the last
    user seen."""

    def __init__(self, app: Flask) -> None:
        self.app, self.client = app, app.test_client()

    def get(self, *args: Any, **kwargs: Any) -> Any:
        with self.app.app_context():
            return self.client.get(*args, **kwargs)

    def post(self, *args: Any, **kwargs: Any) -> Any:
        with self.app.app_context():
            return self.client.post(*args, **kwargs)


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


def open_forwarded_case(
    municipality: str,
    number: str,
    *,
    category: str = "health",
    contact_ok: bool = True,
    shared_phone: bool = False,
    description: str = "necesito un medico",
) -> tuple[int, str]:
    """A consented case, forwarded through its chain (alerts recorded, not sent): (id, ref)."""
    from sqlalchemy import update

    from flows.services import CaseRequest
    from ruta import cases, contacts, handover, referrals
    from ruta import policy as policies
    from ruta.models import Message, utcnow

    now = utcnow()
    with db.transaction() as session:
        person = contacts.lock_contact(session, number, seen_at=now)
        case, work = referrals.open_case(
            session,
            CaseRequest(
                category=category,
                municipality=municipality,
                safe=True,
                consent=True,
                consent_wording="main:v1:consent",
                channel="twilio",
                description=description,
                shared_phone=shared_phone,
                safe_times="morning",
                contact_ok=contact_ok,
            ),
            contact_id=person.id,
            now=now,
            policy=policies.load(),
            reference=cases.new_reference(session),
        )
        session.flush()
        batch = handover.claim(
            session,
            now=now,
            policy=policies.load(),
            channel="twilio",
            limit=len(work.outbox_ids),
            event_ids=work.outbox_ids,
        )
        # Recorded, not sent: as a drain whose send window closed leaves its alerts.
        session.execute(
            update(Message)
            .where(Message.id.in_([send.message_id for send in batch.sends]))
            .values(status="queued", attempts=0, claimed_at=None)
        )
        return case.id, case.reference


@pytest.fixture()
def sample_case(app: Flask) -> dict[str, Any]:
    """A consented case in Upala, forwarded to Upala's demo focal point (alert not sent)."""
    case_id, reference = open_forwarded_case("cr-upala", "+50688004455")
    return {"id": case_id, "reference": reference}


@pytest.fixture()
def flows_restored(app: Flask) -> Iterator[None]:
    """Tests share the database: drop the flow versions and drafts a test made."""
    with db.transaction() as session:
        marker = session.scalar(select(func.max(FlowVersion.id))) or 0
    yield
    with db.transaction() as session:
        session.execute(delete(FlowVersion).where(FlowVersion.id > marker))
        session.execute(delete(FlowDraft))
