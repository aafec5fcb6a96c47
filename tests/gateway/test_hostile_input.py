"""Hostile bodies never produce a 5xx: each gets a sensible reply or a 4xx, and nothing leaks."""

from __future__ import annotations

from typing import Any

import pytest

from ruta.models import Message
from tests.conftest import PUBLIC_BASE_URL, TwilioPhone, count, reply_of, sign

HOSTILE = {
    "empty": "",
    "whitespace": "   \n\t ",
    "5000 chars": "A" * 5000,
    "emoji": "🆘🙏🏽 ayuda 👨‍👩‍👧",
    "nul": "HOLA\x00\x00DROP",
    "right-to-left": "\u202eALOH\u202c مرحبا שלום",
    "sql": "1'; DROP TABLE contacts; --",
    "format string": "{0} {reference} %s %n {__class__.__mro__}",
    "template": "{{7*7}} ${7*7} <%= 7*7 %>",
    "xml": "</Message><Message>pwned</Message>",
    "combining marks": "H̶O̶L̶A̶" + "́" * 300,
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_bodies_get_a_reply_never_a_5xx(phone: TwilioPhone, name: str) -> None:
    body = HOSTILE[name]
    for text in (body, "HOLA", body, "1", body):
        response = phone.post(phone.params(text))
        assert response.status_code == 200, (name, response.status_code)
        reply = reply_of(response.data)
        assert reply, name  # a menu or an explanation, never silence
        assert "Traceback" not in reply
        assert "pwned" not in reply.split("\n")[0]
        assert "49" not in reply  # no template was evaluated
    # Every message stored once: nothing lost.
    assert count(Message) == 10


def test_hostile_text_is_not_evaluated_as_a_template(phone: TwilioPhone) -> None:
    phone.text("HOLA")
    phone.text("2")
    phone.text("si")
    phone.text("1")
    reply = phone.text("{reference}")  # an invalid municipality: shown the menu again
    assert "{reference}" not in reply and "Referencia" not in reply


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"MessageSid": "SM1", "From": "not-a-number", "Body": "HOLA"},
        {"MessageSid": "SM" + "x" * 200, "From": "+50688001122", "Body": "HOLA"},
        {"MessageSid": "SM2", "From": "+1", "Body": "HOLA"},
    ],
)
def test_malformed_signed_requests_get_4xx(client: Any, form: dict[str, str]) -> None:
    url = f"{PUBLIC_BASE_URL}/webhooks/twilio/sms"
    response = client.post(
        "/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": sign(url, form)}
    )
    assert 400 <= response.status_code < 500
    assert b"Traceback" not in response.data
    assert count(Message) == 0


def test_invalid_utf8_is_refused_not_crashed(client: Any) -> None:
    response = client.post(
        "/webhooks/twilio/sms",
        data=b"MessageSid=SM9&From=%2B50688001122&Body=%FF%FE%C3",
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": "x"},
    )
    assert response.status_code == 403
    assert count(Message) == 0


def test_oversized_request_is_413(client: Any) -> None:
    response = client.post(
        "/webhooks/twilio/sms", data={"Body": "A" * 100_000}, headers={"X-Twilio-Signature": "x"}
    )
    assert response.status_code == 413


def test_wrong_method_and_unknown_path_are_4xx(client: Any) -> None:
    assert client.get("/webhooks/twilio/sms").status_code == 405
    assert client.post("/webhooks/nope").status_code == 404
    assert client.post("/webhooks/africastalking/x/sms", data={"from": "\x00"}).status_code == 404
