"""Africa's Talking SMS: ``POST /webhooks/africastalking/<token>/sms``; replies go out by queue.

Africa's Talking signs nothing, so the callback URL carries a secret token (AT_CALLBACK_TOKEN),
compared in constant time; a wrong token is answered like an unknown page.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, request

from gateway.channels import receive
from ruta.contacts import InvalidNumber, normalise_number
from ruta.conversation import InboundMessage

bp = Blueprint("africastalking_sms", __name__)
CHANNEL = "africastalking"


def check_token(token: str) -> None:
    expected = current_app.config.get("AT_CALLBACK_TOKEN") or ""
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        abort(404)


@bp.post("/webhooks/africastalking/<token>/sms")
def inbound(token: str) -> Response:
    check_token(token)
    sender, message_id = request.form.get("from", ""), request.form.get("id", "")
    if not message_id or len(message_id) > 64:
        return Response("id is required\n", 400, mimetype="text/plain")
    try:
        number = normalise_number(sender)
    except InvalidNumber:
        return Response("from is not a phone number\n", 400, mimetype="text/plain")
    receive(
        InboundMessage(
            CHANNEL, number, request.form.get("text", ""), provider_message_id=message_id
        ),
        reply_inline=False,
    )
    return Response("", 200, mimetype="text/plain")
