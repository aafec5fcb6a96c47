"""A person's data erased on request (``BORRAR``), closed cases anonymised after a while
(DOMAIN.md, protection rules).

``BORRAR`` marks the contact (``erase_requested_at``), stops every message to them and ends their
subscriptions at once, in the webhook's own transaction. The sweeper then erases them
(``erase_requested``) once no message to them is waiting, so the neutral confirmation still goes
out. What stays of their cases is what the figures need (kind of help, place, urgency, dates,
status, the case history's events); the rest is deleted: the contact row (number and its hash),
messages, questions, conversation and USSD sessions, subscriptions, broadcast rows, the case's
free text and contact details, and the replies that described them to a focal point (``INFO``).
An open case is closed as withdrawn. Every case touched gets a
case event and an entry in the audit log; neither holds anything about the person.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from ruta import referrals
from ruta.models import (
    AuditEntry,
    BroadcastRecipient,
    Case,
    CaseNote,
    CaseStatus,
    Contact,
    ConversationSession,
    Direction,
    FocalPoint,
    Message,
    MessageStatus,
    Question,
    Subscription,
    UssdSession,
)

__all__ = ["anonymise_case", "anonymise_closed_cases", "erase_contact", "erase_requested"]

#: Outcome of a case closed because the person erased their data.
WITHDRAWN = "withdrawn"
#: A confirmation that has not gone out after this long no longer holds the erasure up.
CONFIRMATION_WAIT = timedelta(minutes=30)
_UNSENT = (MessageStatus.QUEUED.value, MessageStatus.SENDING.value)


def _audit(
    session: Session, actor: str, action: str, kind: str, object_id: int, **detail: str
) -> None:
    session.add(
        AuditEntry(
            actor=actor, action=action, object_type=kind, object_id=str(object_id), detail=detail
        )
    )


def anonymise_case(session: Session, case: Case, now: datetime, *, actor: str, reason: str) -> None:
    """Strip ``case`` of everything about the person; close it (withdrawn) if it is open."""
    if case.status != CaseStatus.CLOSED.value:
        case.status = CaseStatus.CLOSED.value
        case.closed_at = now
        case.outcome = WITHDRAWN
        case.deadline_at = None
        referrals.record(session, case, "closed", actor, outcome=WITHDRAWN)
    # Replies that described the person to a focal point (INFO: safe times, maybe the number)
    # are theirs too; one still waiting to go out is not sent at all.
    session.execute(
        update(Message)
        .where(Message.about_case_id == case.id, Message.status == MessageStatus.QUEUED.value)
        .values(body=None, status=MessageStatus.SUPPRESSED.value),
        execution_options={"synchronize_session": False},
    )
    session.execute(
        update(Message)
        .where(Message.about_case_id == case.id, Message.body.is_not(None))
        .values(body=None),
        execution_options={"synchronize_session": False},
    )
    # Staff notes may quote the person: they go with the rest of what is about them.
    session.execute(delete(CaseNote).where(CaseNote.case_id == case.id))
    case.contact_id = None
    case.description = None
    case.safe_times = None
    case.shared_phone = None
    case.contact_ok = False
    referrals.record(session, case, "anonymised", actor, reason=reason)
    _audit(session, actor, "case.anonymised", "case", case.id, reason=reason)


def erase_contact(session: Session, contact: Contact, now: datetime) -> None:
    """Erase one person now. A focal point keeps their contact row (routing needs the number);
    everything else of theirs goes all the same."""
    for case in session.scalars(select(Case).where(Case.contact_id == contact.id)):
        anonymise_case(session, case, now, actor="person", reason="erase request")
    for model in (
        Question,
        BroadcastRecipient,
        Subscription,
        UssdSession,
        ConversationSession,
        Message,
    ):
        session.execute(delete(model).where(model.contact_id == contact.id))
    staff = session.scalar(select(FocalPoint.id).where(FocalPoint.contact_id == contact.id))
    # No id: SQLite may give a deleted contact's id to the next new one.
    session.add(
        AuditEntry(
            actor="person",
            action="contact.erased",
            object_type="contact",
            detail={"staff_contact_kept": staff is not None},
        )
    )
    if staff is None:
        session.delete(contact)
    else:
        contact.erase_requested_at = None


def erase_requested(session: Session, now: datetime) -> int:
    """Erase everyone who asked and whose confirmation is out (or waited too long for it).
    Returns how many people were erased."""
    erased = 0
    asked = session.scalars(
        select(Contact).where(Contact.erase_requested_at.is_not(None)).with_for_update()
    ).all()
    for contact in asked:
        waiting = session.scalar(
            select(Message.id)
            .where(
                Message.contact_id == contact.id,
                Message.direction == Direction.OUTBOUND.value,
                Message.status.in_(_UNSENT),
            )
            .limit(1)
        )
        requested = contact.erase_requested_at
        assert requested is not None
        if waiting is not None and now - requested < CONFIRMATION_WAIT:
            continue
        erase_contact(session, contact, now)
        erased += 1
    return erased


def anonymise_closed_cases(session: Session, now: datetime, days: int) -> int:
    """Anonymise cases closed more than ``days`` days before ``now`` (0 or less: never)."""
    if days <= 0:
        return 0
    cases = session.scalars(
        select(Case).where(
            Case.status == CaseStatus.CLOSED.value,
            Case.closed_at < now - timedelta(days=days),
            Case.contact_id.is_not(None) | Case.description.is_not(None),
        )
    ).all()
    for case in cases:
        anonymise_case(session, case, now, actor="system", reason=f"closed over {days} days")
    return len(cases)
