"""Jobs: send one outbound message; sweep the outbox for messages no job is carrying."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import CursorResult, select, update

from gateway.senders import SendError, build_sender
from ruta.db import db
from ruta.models import Contact, Message, MessagePurpose, MessageStatus, utcnow
from workers.queues import SEND_RETRY, enqueue

log = logging.getLogger(__name__)

#: A message queued (or claimed) longer than this without being sent is handed over again.
SWEEP_AFTER = timedelta(minutes=2)


def send_message(message_id: int) -> str:
    """Hand one outbound message to its provider.

    The row is claimed (queued -> sending) in its own transaction before the provider call, so a
    second run of this job sends nothing twice. Transient provider errors are raised again so
    RQ's Retry runs; permanent ones mark the message failed.
    """
    with db.transaction() as session:
        claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(Message)
            .where(Message.id == message_id, Message.status == MessageStatus.QUEUED.value)
            .values(status=MessageStatus.SENDING.value, attempts=Message.attempts + 1)
        )
        if not claimed.rowcount:
            return "not queued"
        message = session.get(Message, message_id)
        assert message is not None
        contact = session.get(Contact, message.contact_id)
        confirmation = message.purpose == MessagePurpose.OPT_OUT_CONFIRMATION.value
        if contact is None or (contact.opted_out and not confirmation):
            message.status = MessageStatus.SUPPRESSED.value
            return "suppressed"
        to, body, channel = contact.phone, message.body or "", message.channel
    try:
        result = build_sender(channel, current_app.config).send(to, body)
    except SendError as exc:
        with db.transaction() as session:
            message = session.get(Message, message_id)
            assert message is not None
            message.error_code = exc.code
            message.status = (MessageStatus.FAILED if exc.permanent else MessageStatus.QUEUED).value
        log.warning(
            "send failed: message=%s code=%s permanent=%s", message_id, exc.code, exc.permanent
        )
        if exc.permanent:
            return "failed"
        raise
    with db.transaction() as session:
        message = session.get(Message, message_id)
        assert message is not None
        message.status = MessageStatus.SENT.value
        message.provider_message_id = result.provider_message_id
    return "sent"


def sweep_outbox() -> int:
    """Re-enqueue messages that sat queued too long (Redis was down, a worker died)."""
    cutoff = utcnow() - SWEEP_AFTER
    with db.transaction() as session:
        session.execute(
            update(Message)
            .where(Message.status == MessageStatus.SENDING.value, Message.updated_at < cutoff)
            .values(status=MessageStatus.QUEUED.value)
        )
        stale = session.scalars(
            select(Message.id).where(
                Message.status == MessageStatus.QUEUED.value, Message.updated_at < cutoff
            )
        ).all()
    redis = current_app.extensions["ruta.redis"]
    prefix = current_app.config["RUTA_QUEUE_PREFIX"]
    count = 0
    for message_id in stale:
        if enqueue(redis, prefix, send_message, message_id, retry=SEND_RETRY):
            count += 1
    return count
