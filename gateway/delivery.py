"""Delivery reports: ``POST /webhooks/twilio/status`` (signed) and
``POST /webhooks/africastalking/<token>/delivery``. Reports arrive late, twice and out of order:
a message's status only moves forward, and a failed alert moves its case on."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request

from gateway import fields
from gateway.africastalking_sms import check_token
from gateway.twilio_sms import signature_valid
from ruta import clock, spool
from ruta.delivery_reports import apply_report
from ruta.models import MessageStatus

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


@bp.post("/webhooks/twilio/status")
def twilio_status() -> Response:
    if not signature_valid():
        return Response("invalid signature\n", 403, mimetype="text/plain")
    form = request.form
    sid = fields.shaped(form.get("MessageSid"), fields.TWILIO_MESSAGE_SID, "MessageSid")
    error = fields.optional(form.get("ErrorCode"), fields.ERROR_CODE, "ErrorCode")
    reported = form.get("MessageStatus", "")
    status = TWILIO.get(reported)
    if status is None:
        log.info("twilio status ignored: %r", reported[:20])
        return Response("", 204)
    _report("twilio", sid, status, error, None)
    return Response("", 204)


@bp.post("/webhooks/africastalking/<token>/delivery")
def africastalking_delivery(token: str) -> Response:
    check_token(token)
    form = request.form
    message_id = fields.shaped(form.get("id"), fields.MESSAGE_ID, "id")
    reason = fields.optional(form.get("failureReason"), fields.REASON, "failureReason")
    to = form.get("phoneNumber") or None
    if to is not None:
        to = fields.phone_number(to, "phoneNumber")
    reported = form.get("status", "")
    status = AFRICASTALKING.get(reported)
    if status is None:
        log.info("africastalking status ignored: %r", reported[:20])
        return Response("", 204)
    _report("africastalking", message_id, status, reason, to)
    return Response("", 204)


def _report(
    channel: str, provider_id: str, status: MessageStatus, error: str | None, to: str | None
) -> None:
    """Apply a report now, or keep it in the spool while the database is away."""
    from gateway.channels import database_or_spool

    def entry() -> spool.Entry:
        return spool.Entry(
            kind="report",
            channel=channel,
            provider_message_id=provider_id,
            received_at=clock.now().isoformat(),
            status=status.value,
            error=error,
            to=to,
        )

    with database_or_spool(entry):
        apply_report(channel, provider_id, status, error, to)
