"""A JSON USSD aggregator (Hubtel-style): ``POST /webhooks/ussd/json/<token>`` with
``{"Type": "Initiation"|"Response"|"Release"|"Timeout", "SessionId", "Mobile", "ServiceCode",
"Message" (the newest input only), "Sequence" (optional)}``, answered with
``{"Type": "Response"|"Release", "Message": ...}``."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, jsonify, request

from gateway import fields
from gateway.ussd import ScreenRules, answer, ended, inputs, number, service_code, session_id
from ruta.ussd import UssdRequest

bp = Blueprint("ussd_json", __name__)
PROVIDER = "json"
NEW, INPUT, CLOSED = "initiation", "response", ("release", "timeout")


@bp.post("/webhooks/ussd/json/<token>")
def ussd_callback(token: str) -> Response:
    expected = current_app.config.get("USSD_JSON_CALLBACK_TOKEN") or ""
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        abort(404)
    if not request.is_json:
        raise fields.BadField("a JSON object is required")
    body = fields.json_object(request.get_data(cache=False))
    kind = body.get("Type")
    kind = kind.lower() if isinstance(kind, str) else None
    if kind in CLOSED:
        ended(PROVIDER, session_id(body.get("SessionId"), "SessionId"), completed=kind == "release")
        return jsonify(Type="Release", Message="")
    if kind not in (NEW, INPUT):
        raise fields.BadField("Type must be Initiation, Response, Release or Timeout")
    message = inputs(body.get("Message"), "Message")
    parsed = UssdRequest(
        provider=PROVIDER,
        session_id=session_id(body.get("SessionId"), "SessionId"),
        msisdn=number(body.get("Mobile"), "Mobile"),
        service_code=service_code(body.get("ServiceCode"), "ServiceCode"),
        latest="" if kind == NEW else message,
        sequence=fields.sequence(body.get("Sequence")),
    )
    rules = ScreenRules(
        current_app.config["USSD_JSON_MAX_CHARS"], current_app.config["USSD_JSON_TRANSLITERATE"]
    )
    reply = answer(parsed, rules)
    return jsonify(Type="Release" if reply.end else "Response", Message=reply.text)
