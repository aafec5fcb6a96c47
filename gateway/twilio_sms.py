"""Twilio SMS: ``POST /webhooks/twilio/sms``, signed by Twilio, answered inline with TwiML."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from gateway import fields
from gateway.channels import receive
from ruta.conversation import InboundMessage

bp = Blueprint("twilio_sms", __name__)
CHANNEL = "twilio"


def public_url() -> str:
    """The URL Twilio signed: PUBLIC_BASE_URL plus the path and the raw query string."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    query = request.query_string.decode("latin-1")
    if base:
        return base.rstrip("/") + request.path + (f"?{query}" if query else "")
    # Without PUBLIC_BASE_URL: the request's own URL (ProxyFix has applied X-Forwarded-* when
    # RUTA_TRUST_PROXY is on).
    return request.base_url + (f"?{query}" if query else "")


def signature_valid() -> bool:
    token = current_app.config.get("TWILIO_AUTH_TOKEN")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        return False
    return bool(RequestValidator(token).validate(public_url(), request.form, signature))


def twiml(text: str | None) -> Response:
    response = MessagingResponse()
    if text:
        response.message(text)
    return Response(str(response), mimetype="text/xml")


@bp.post("/webhooks/twilio/sms")
def inbound() -> Response:
    if not signature_valid():
        return Response("invalid signature\n", 403, mimetype="text/plain")
    form = request.form
    sid = fields.shaped(form.get("MessageSid"), fields.TWILIO_MESSAGE_SID, "MessageSid")
    number = fields.phone_number(form.get("From"), "From")
    fields.optional(form.get("AccountSid"), fields.TWILIO_ACCOUNT_SID, "AccountSid")
    fields.optional(form.get("NumMedia"), fields.COUNT, "NumMedia")
    # Body: any text a person typed (stored encrypted); MAX_CONTENT_LENGTH bounds it.
    handled = receive(
        InboundMessage(CHANNEL, number, form.get("Body", ""), provider_message_id=sid),
        reply_inline=True,
    )
    return twiml(handled.reply)
