"""The baseline for ``bench/inbound.py``: a bare Flask app answering fixed TwiML.

Served by gunicorn with the same settings as Ruta, it measures what the web stack alone costs
(HTTP parsing, WSGI, Flask routing) on this machine.
"""

from __future__ import annotations

from flask import Flask, Response

TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>hola</Message></Response>'

app = Flask(__name__)


@app.post("/webhooks/twilio/sms")
def inbound() -> Response:
    # The body is not even parsed: this is the floor the web stack sets, nothing more.
    return Response(TWIML, mimetype="text/xml")


@app.post("/webhooks/africastalking/<token>/ussd")
def ussd(token: str) -> Response:
    return Response("CON hola", mimetype="text/plain")


@app.get("/healthz")
def healthz() -> Response:
    return Response("ok\n", mimetype="text/plain")
