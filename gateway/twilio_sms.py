"""Twilio SMS: ``POST /webhooks/twilio/sms``, signed by Twilio, answered inline with TwiML."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import urlparse

from flask import Blueprint, Response, current_app, request
from twilio.request_validator import add_port, remove_port
from werkzeug.datastructures import MultiDict

from gateway import fields, lanes
from gateway.channels import receive
from ruta.conversation import InboundMessage
from ruta.crypto import keyed_hmac

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


@lru_cache(maxsize=8)
def _mac(token: str) -> Callable[[bytes], bytes]:
    return keyed_hmac(token.encode("utf-8"), hashlib.sha1)


def _signature(token: str, url: str, signed: str) -> str:
    return base64.b64encode(_mac(token)((url + signed).encode("utf-8"))).decode("ascii")


def signature_valid() -> bool:
    """Whether this Flask request carries Twilio's signature (see ``signed``)."""
    return signed(
        current_app.config.get("TWILIO_AUTH_TOKEN"),
        request.headers.get("X-Twilio-Signature", ""),
        public_url(),
        request.form,
    )


def signed(token: str | None, signature: str, url: str, form: MultiDict[str, str]) -> bool:
    """Twilio's signature (HMAC-SHA1 of the URL, then each parameter's name and value, names in
    order), as the twilio library's RequestValidator checks it, computed once for a genuine
    request: the library computes it twice, over the URL with and without its port, since
    Twilio signs either. Here the URL as it stands comes first, the other forms only if it
    fails."""
    if not token or not signature:
        return False
    # Names in order, each name's distinct values in order: the distinct pairs, sorted.
    payload = "".join(name + value for name, value in sorted(set(form.items(multi=True))))
    given = signature.encode("utf-8", "surrogateescape")
    if hmac.compare_digest(_signature(token, url, payload).encode("ascii"), given):
        return True
    parsed = urlparse(url)
    return any(
        hmac.compare_digest(_signature(token, each, payload).encode("ascii"), given)
        for each in (remove_port(parsed), add_port(parsed))
        if each != url
    )


#: What ``twilio.twiml.messaging_response.MessagingResponse`` renders, byte for byte, without
#: building an ElementTree for one element (tests/gateway/test_twilio_webhook.py compares them).
_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>{}</Message></Response>'
_TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response />'


def twiml_text(text: str | None) -> str:
    if not text:
        return _TWIML_EMPTY
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _TWIML.format(escaped)


def twiml(text: str | None) -> Response:
    return Response(twiml_text(text), mimetype="text/xml")


def message(form: MultiDict[str, str]) -> InboundMessage:
    """The person's message in Twilio's form; ``BadField`` names a field out of shape."""
    sid = fields.shaped(form.get("MessageSid"), fields.TWILIO_MESSAGE_SID, "MessageSid")
    number = fields.phone_number(form.get("From"), "From")
    fields.optional(form.get("AccountSid"), fields.TWILIO_ACCOUNT_SID, "AccountSid")
    fields.optional(form.get("NumMedia"), fields.COUNT, "NumMedia")
    # Body: any text a person typed (stored encrypted); MAX_CONTENT_LENGTH bounds it.
    return InboundMessage(CHANNEL, number, form.get("Body", ""), provider_message_id=sid)


def lane(incoming: lanes.Incoming) -> lanes.Answer:
    """This webhook on the lane (gateway/lanes.py): the same answers as ``inbound``."""
    config = current_app.config
    url = lanes.signed_url(incoming, config.get("PUBLIC_BASE_URL"))
    signature = incoming.environ.get("HTTP_X_TWILIO_SIGNATURE", "")
    if not signed(config.get("TWILIO_AUTH_TOKEN"), signature, url, incoming.form):
        return lanes.Answer(403, "invalid signature\n", "text/plain")
    parsed = message(incoming.form)
    return lanes.Answer(200, twiml_text(receive(parsed, reply_inline=True).reply), "text/xml")


@bp.post("/webhooks/twilio/sms")
def inbound() -> Response:
    if not signature_valid():
        return Response("invalid signature\n", 403, mimetype="text/plain")
    handled = receive(message(request.form), reply_inline=True)
    return twiml(handled.reply)
