"""Delivery reports: ``POST /webhooks/twilio/status`` (signed) and
``POST /webhooks/africastalking/<token>/delivery``. Reports arrive late, twice and out of order:
a message's status only moves forward, and a failed alert moves its case on."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy import select

from gateway.africastalking_sms import check_token
from gateway.twilio_sms import signature_valid
from ruta import clock, referrals
from ruta.db import db
from ruta.models import (
    BroadcastRecipient,
    Message,
    MessagePurpose,
    MessageStatus,
    RecipientStatus,
)
from ruta.referrals import Work
from workers.jobs import hand_over

log = logging.getLogger(__name__)
bp = Blueprint("delivery", __name__)

#: Provider statuses mapped to ours. Unknown ones are logged and ignored.
TWILIO = {
    "queued": MessageStatus.SENT,
    "accepted": MessageStatus.SENT,
    "scheduled": MessageStatus.SENT,
    "sending": MessageStatus.SENT,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.FAILED,
    "failed": MessageStatus.FAILED,
    "canceled": MessageStatus.FAILED,
}
AFRICASTALKING = {
    "Sent": MessageStatus.SENT,
    "Submitted": MessageStatus.SENT,
    "Buffered": MessageStatus.SENT,
    "Success": MessageStatus.DELIVERED,
    "Rejected": MessageStatus.FAILED,
    "Failed": MessageStatus.FAILED,
}
#: Order in which a status may move; delivered and failed are final.
RANK = {
    MessageStatus.QUEUED.value: 0,
    MessageStatus.SENDING.value: 1,
    MessageStatus.SENT.value: 2,
    MessageStatus.DELIVERED.value: 3,
    MessageStatus.FAILED.value: 3,
}


def apply_report(channel: str, provider_id: str, status: MessageStatus, error: str | None) -> bool:
    """Move the message forward to ``status``; False when unknown or already further."""
    work = Work()
    with db.transaction() as session:
        message = session.scalar(
            select(Message)
            .where(Message.channel == channel, Message.provider_message_id == provider_id)
            .with_for_update()
        )
        if message is None:
            return _broadcast_report(session, provider_id, status, error)
        if RANK.get(message.status, 3) >= RANK[status.value]:
            return False
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
    session: Any, provider_id: str, status: MessageStatus, error: str | None
) -> bool:
    """A report on a broadcast message moves its ledger row forward (sent -> delivered/failed)."""
    row = session.scalar(
        select(BroadcastRecipient)
        .where(BroadcastRecipient.provider_message_id == provider_id)
        .with_for_update()
    )
    if row is None or status is MessageStatus.SENT or row.status != RecipientStatus.SENT.value:
        return False
    delivered = status is MessageStatus.DELIVERED
    row.status = (RecipientStatus.DELIVERED if delivered else RecipientStatus.FAILED).value
    if error:
        row.error_code = error[:32]
    return True


@bp.post("/webhooks/twilio/status")
def twilio_status() -> Response:
    if not signature_valid():
        return Response("invalid signature\n", 403, mimetype="text/plain")
    sid, reported = request.form.get("MessageSid", ""), request.form.get("MessageStatus", "")
    status = TWILIO.get(reported)
    if not sid or status is None:
        log.info("twilio status ignored: %r", reported[:20])
        return Response("", 204)
    apply_report("twilio", sid, status, request.form.get("ErrorCode"))
    return Response("", 204)


@bp.post("/webhooks/africastalking/<token>/delivery")
def africastalking_delivery(token: str) -> Response:
    check_token(token)
    message_id, reported = request.form.get("id", ""), request.form.get("status", "")
    status = AFRICASTALKING.get(reported)
    if not message_id or status is None:
        log.info("africastalking status ignored: %r", reported[:20])
        return Response("", 204)
    apply_report("africastalking", message_id, status, request.form.get("failureReason"))
    return Response("", 204)
