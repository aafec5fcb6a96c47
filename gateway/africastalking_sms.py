"""Africa's Talking SMS: ``POST /webhooks/africastalking/<token>/sms``; replies go out by queue.

Africa's Talking signs nothing, so the callback URL carries a secret token (AT_CALLBACK_TOKEN),
compared in constant time; a wrong token is answered like an unknown page.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, request
from werkzeug.datastructures import MultiDict

from gateway import fields, lanes
from gateway.channels import receive
from ruta.conversation import InboundMessage

bp = Blueprint("africastalking_sms", __name__)
CHANNEL = "africastalking"


def check_token(token: str) -> None:
    expected = current_app.config.get("AT_CALLBACK_TOKEN") or ""
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        abort(404)


def message(token: str, form: MultiDict[str, str]) -> InboundMessage:
    """The person's message in Africa's Talking's form, once the token is right."""
    check_token(token)
    message_id = fields.shaped(form.get("id"), fields.MESSAGE_ID, "id")
    number = fields.phone_number(form.get("from"), "from")
    return InboundMessage(CHANNEL, number, form.get("text", ""), provider_message_id=message_id)


def lane(incoming: lanes.Incoming) -> lanes.Answer:
    """This webhook on the lane (gateway/lanes.py): the same answers as ``inbound``."""
    receive(message(incoming.token or "", incoming.form), reply_inline=False)
    return lanes.Answer(200, "", "text/plain")


@bp.post("/webhooks/africastalking/<token>/sms")
def inbound(token: str) -> Response:
    receive(message(token, request.form), reply_inline=False)
    return Response("", 200, mimetype="text/plain")
