"""Africa's Talking USSD: ``POST /webhooks/africastalking/<token>/ussd`` (form: sessionId,
serviceCode, phoneNumber, networkCode, text = every input so far joined by ``*``), answered in
``text/plain`` as ``CON ...`` (wait for input) or ``END ...``. The end-of-session notice goes to
``.../ussd/events``."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from werkzeug.datastructures import MultiDict

from gateway import lanes
from gateway.africastalking_sms import check_token
from gateway.ussd import ScreenRules, answer, ended, inputs, number, service_code, session_id
from ruta.ussd import UssdRequest

bp = Blueprint("ussd_africastalking", __name__)
PROVIDER = "africastalking"


def screen(token: str, form: MultiDict[str, str]) -> str:
    """The screen for this step: ``CON ...`` or ``END ...``. Refuses (a wrong token, a field
    out of shape) before anything is read or written."""
    check_token(token)
    parsed = UssdRequest(
        provider=PROVIDER,
        session_id=session_id(form.get("sessionId"), "sessionId"),
        msisdn=number(form.get("phoneNumber"), "phoneNumber"),
        service_code=service_code(form.get("serviceCode"), "serviceCode"),
        text=inputs(form.get("text"), "text"),
    )
    rules = ScreenRules(
        current_app.config["AT_USSD_MAX_CHARS"], current_app.config["AT_USSD_TRANSLITERATE"]
    )
    reply = answer(parsed, rules)
    return ("END " if reply.end else "CON ") + reply.text


def lane(incoming: lanes.Incoming) -> lanes.Answer:
    """This webhook on the lane (gateway/lanes.py): the same answers as ``ussd_callback``."""
    return lanes.Answer(200, screen(incoming.token or "", incoming.form), "text/plain")


@bp.post("/webhooks/africastalking/<token>/ussd")
def ussd_callback(token: str) -> Response:
    return Response(screen(token, request.form), mimetype="text/plain")


@bp.post("/webhooks/africastalking/<token>/ussd/events")
def ussd_events(token: str) -> Response:
    check_token(token)
    ended(
        PROVIDER,
        session_id(request.form.get("sessionId"), "sessionId"),
        completed=request.form.get("status") == "Success",
    )
    return Response("", 200, mimetype="text/plain")
