"""The alerts of a case as its page shows them: to whom (focal point, organisation, position), in
what state, and why one failed. "Forwarded" on a case says an alert was written, not that anyone
got it; this is where staff see which alerts went out and which never will."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from providers.senders import describe_error
from ruta.models import Case, FocalPoint, Message, MessageStatus, Organization, Referral
from workers.jobs import MAX_SEND_ATTEMPTS

#: Alert states that mean the focal point will not get this alert.
UNREACHED = (MessageStatus.FAILED.value, MessageStatus.SUPPRESSED.value)


@dataclass(frozen=True)
class AlertRow:
    created_at: datetime
    focal_point_id: int
    focal_point: str
    organization: str
    coordinator: bool
    position: int
    state: str  # queued, sending, sent, delivered, failed, suppressed, unknown
    reason: str
    attempts: int


def _reason(message: Message | None) -> str:
    """Why an alert is where it is, in the user's language ("" when its state says it all)."""
    if message is None:
        return _("no message recorded")
    status, code, attempts = message.status, message.error_code, message.attempts
    if status == MessageStatus.FAILED.value:
        if not code:
            return _("the provider could not deliver it")
        if attempts >= MAX_SEND_ATTEMPTS:
            return _(
                "provider error %(error)s after %(n)s attempts",
                error=describe_error(code),
                n=attempts,
            )
        return _("provider error %(error)s", error=describe_error(code))
    if status == MessageStatus.SUPPRESSED.value:
        return _("the focal point has sent STOP")
    if status == MessageStatus.QUEUED.value and code:
        return _(
            "retrying after provider error %(error)s (%(n)s of %(max)s attempts)",
            error=describe_error(code),
            n=attempts,
            max=MAX_SEND_ATTEMPTS,
        )
    if status == MessageStatus.QUEUED.value:
        return _("waiting for a worker")
    return ""


def alert_rows(session: Session, case: Case) -> list[AlertRow]:
    rows = session.execute(
        select(Referral, FocalPoint, Organization, Message)
        .join(FocalPoint, FocalPoint.id == Referral.focal_point_id)
        .join(Organization, Organization.id == FocalPoint.organization_id)
        .outerjoin(Message, Message.id == Referral.message_id)
        .where(Referral.case_id == case.id)
        .order_by(Referral.id)
    )
    return [
        AlertRow(
            created_at=referral.created_at,
            focal_point_id=fp.id,
            focal_point=fp.name,
            organization=organization.name,
            coordinator=fp.is_coordinator,
            position=referral.position,
            state=message.status if message is not None else "unknown",
            reason=_reason(message),
            attempts=message.attempts if message is not None else 0,
        )
        for referral, fp, organization, message in rows
    ]


def failed_alerts() -> Select[Any]:
    """The referrals whose alert failed or was not sent (select of their case ids)."""
    return (
        select(Referral.case_id)
        .join(Message, Message.id == Referral.message_id)
        .where(Message.status.in_(UNREACHED))
    )


def unreached(alerts: list[AlertRow], case: Case) -> bool:
    """True when every alert at the case's current position failed or was not sent."""
    current = [a for a in alerts if a.position == case.chain_position]
    return bool(current) and all(a.state in UNREACHED for a in current)
