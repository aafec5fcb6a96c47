"""Applying a provider's delivery report to what Ruta sent: a message's status only moves
forward (reports arrive late, twice and out of order), a failed alert moves its case on, and a
broadcast's recipient row follows its message. The webhooks (gateway/delivery.py) and the spool's
drain (workers/spool_jobs.py) both apply reports through here."""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from ruta import clock, contacts, referrals
from ruta.db import db
from ruta.jobqueue import hand_over
from ruta.models import (
    Broadcast,
    BroadcastRecipient,
    Direction,
    Message,
    MessagePurpose,
    MessageStatus,
    RecipientStatus,
)
from ruta.referrals import Work

log = logging.getLogger(__name__)

#: Order in which a status may move; delivered and failed are final.
RANK = {
    MessageStatus.QUEUED.value: 0,
    MessageStatus.SENDING.value: 1,
    MessageStatus.SENT.value: 2,
    MessageStatus.DELIVERED.value: 3,
    MessageStatus.FAILED.value: 3,
}


def apply_report(
    channel: str,
    provider_id: str,
    status: MessageStatus,
    error: str | None,
    to: str | None = None,
) -> bool:
    """Move the message forward to ``status``; False when unknown or already further."""
    work = Work()
    with db.transaction() as session:
        message = session.scalar(
            select(Message)
            .where(Message.channel == channel, Message.provider_message_id == provider_id)
            .with_for_update()
        )
        adopted = False
        if message is None and channel == "africastalking" and to:
            message = _orphan_message(session, to)
            if message is not None:
                message.provider_message_id = provider_id
                message.status = MessageStatus.SENT.value
                message.error_code = None
                adopted = True
        if message is None:
            return _broadcast_report(session, channel, provider_id, status, error, to)
        if RANK.get(message.status, 3) >= RANK[status.value]:
            return adopted
        message.status = status.value
        if error:
            message.error_code = error[:32]
        if message.purpose == MessagePurpose.ALERT.value:
            if status is MessageStatus.DELIVERED:
                referrals.alert_delivered(session, message.id)
            elif status is MessageStatus.FAILED:
                work = referrals.alert_failed(
                    session, message.id, now=clock.now(), reason=f"undelivered {error or ''}"
                )
    hand_over(work)
    return True


def _broadcast_report(
    session: Any,
    channel: str,
    provider_id: str,
    status: MessageStatus,
    error: str | None,
    to: str | None,
) -> bool:
    """A report on a broadcast message moves its ledger row forward (sent -> delivered/failed).
    A report from Africa's Talking on a message the ledger has no id for is that of a call in
    flight when its worker died: it proves the provider has the message, so the recipient's
    row still "sending" takes the report instead of being sent again (``_orphan_row``)."""
    row = session.scalar(
        select(BroadcastRecipient)
        .where(BroadcastRecipient.provider_message_id == provider_id)
        .with_for_update()
    )
    adopted = False
    if row is None and channel == "africastalking" and to:
        row = _orphan_row(session, to)
        if row is not None:
            row.provider_message_id = provider_id
            row.status = RecipientStatus.SENT.value
            adopted = True
    if row is None:
        return False
    if status is MessageStatus.SENT or row.status != RecipientStatus.SENT.value:
        return adopted
    delivered = status is MessageStatus.DELIVERED
    row.status = (RecipientStatus.DELIVERED if delivered else RecipientStatus.FAILED).value
    if error:
        row.error_code = error[:32]
    return True


def _contact_id(session: Any, to: str) -> int | None:
    try:
        contact = contacts.find_contact(session, contacts.normalise_number(to))
    except contacts.InvalidNumber:
        return None
    return contact.id if contact is not None else None


def _orphan_message(session: Any, to: str) -> Message | None:
    """The one outbound message to ``to`` claimed and still "sending" over Africa's Talking
    with no provider id (its worker died, or the answer came after the timeout): a report on
    an id Ruta never recorded is that message's, which proves it went out, so the sweeper does
    not send it again (workers/settlement.py). With two such messages, or a broadcast row in
    the same state, the report could be either's: none takes it, and what is not proven is
    sent again (a duplicate rather than a message lost)."""
    contact_id = _contact_id(session, to)
    if contact_id is None:
        return None
    found = session.scalars(
        select(Message)
        .where(
            Message.contact_id == contact_id,
            Message.direction == Direction.OUTBOUND.value,
            Message.channel == "africastalking",
            Message.status == MessageStatus.SENDING.value,
            Message.provider_message_id.is_(None),
        )
        .limit(2)
        .with_for_update()
    ).all()
    if len(found) != 1 or _orphan_row(session, to) is not None:
        return None
    return found[0]


def _orphan_row(session: Any, to: str) -> BroadcastRecipient | None:
    """The most recently claimed ledger row of ``to`` still in "sending" (Africa's Talking,
    no provider id yet), or None. A report on some other message to the same person that
    arrives before its own id is recorded could be taken for it: then that person misses
    the broadcast (the rare case is stated in the README)."""
    contact_id = _contact_id(session, to)
    if contact_id is None:
        return None
    row: BroadcastRecipient | None = session.scalar(
        select(BroadcastRecipient)
        .join(Broadcast, Broadcast.id == BroadcastRecipient.broadcast_id)
        .where(
            BroadcastRecipient.contact_id == contact_id,
            BroadcastRecipient.status == RecipientStatus.SENDING.value,
            BroadcastRecipient.provider_message_id.is_(None),
            func.coalesce(Broadcast.channel, referrals.outbound_channel(current_app.config))
            == "africastalking",
        )
        .order_by(BroadcastRecipient.updated_at.desc(), BroadcastRecipient.id.desc())
        .limit(1)
        .with_for_update()
    )
    return row
