"""Africa's Talking SMS: ``POST /webhooks/africastalking/<token>/sms``; replies go out by queue.

Africa's Talking signs nothing, so the callback URL carries a secret token (AT_CALLBACK_TOKEN),
compared in constant time; a wrong token is answered like an unknown page.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, request

from gateway import fields
from gateway.channels import receive
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
    form = request.form
    message_id = fields.shaped(form.get("id"), fields.MESSAGE_ID, "id")
    number = fields.phone_number(form.get("from"), "from")
    receive(
        InboundMessage(CHANNEL, number, form.get("text", ""), provider_message_id=message_id),
        reply_inline=False,
    )
    return Response("", 200, mimetype="text/plain")
