"""A JSON USSD aggregator (Hubtel-style): ``POST /webhooks/ussd/json/<token>`` with
``{"Type": "Initiation"|"Response"|"Release"|"Timeout", "SessionId", "Mobile", "ServiceCode",
"Message" (the newest input only), "Sequence" (optional)}``, answered with
``{"Type": "Response"|"Release", "Message": ...}``."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, jsonify, request

from gateway.ussd import BadUssdRequest, ScreenRules, answer, ended, number, session_id
from ruta.ussd import UssdRequest

bp = Blueprint("ussd_json", __name__)
PROVIDER = "json"
NEW, INPUT, CLOSED = "initiation", "response", ("release", "timeout")


@bp.post("/webhooks/ussd/json/<token>")
def ussd_callback(token: str) -> Response:
    expected = current_app.config.get("USSD_JSON_CALLBACK_TOKEN") or ""
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        abort(404)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return Response("a JSON object is required\n", 400, mimetype="text/plain")
    kind = str(body.get("Type", "")).lower()
    try:
        if kind in CLOSED:
            ended(PROVIDER, body.get("SessionId"), completed=kind == "release")
            return jsonify(Type="Release", Message="")
        if kind not in (NEW, INPUT):
            raise BadUssdRequest("Type must be Initiation, Response, Release or Timeout")
        sequence = body.get("Sequence")
        parsed = UssdRequest(
            provider=PROVIDER,
            session_id=session_id(str(body.get("SessionId") or "")),
            msisdn=number(str(body.get("Mobile", ""))),
            service_code=str(body.get("ServiceCode", "")),
            latest="" if kind == NEW else str(body.get("Message", "")),
            sequence=int(sequence) if isinstance(sequence, int) else None,
        )
    except BadUssdRequest as exc:
        return Response(f"{exc}\n", 400, mimetype="text/plain")
    rules = ScreenRules(
        current_app.config["USSD_JSON_MAX_CHARS"], current_app.config["USSD_JSON_TRANSLITERATE"]
    )
    reply = answer(parsed, rules)
    return jsonify(Type="Release" if reply.end else "Response", Message=reply.text)
