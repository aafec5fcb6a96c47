"""Provider ids have a known shape, and what does not match is refused before anything is stored.

Twilio's signature concatenates name+value pairs, so a captured request can be re-split without
breaking it: ``MessageSid=SMx`` + ``NumMedia=0`` signs exactly like ``MessageSid=SMxNumMedia0``.
Without a shape check the replay is a new message id, and a new step of the conversation."""

from __future__ import annotations

from typing import Any

import pytest
from twilio.request_validator import RequestValidator

from ruta.models import Message
from tests.conftest import AT_TOKEN, PERSON, PUBLIC_BASE_URL, TWILIO_TOKEN, TwilioPhone, count, sign

URL = f"{PUBLIC_BASE_URL}/webhooks/twilio/sms"


def test_a_resplit_signed_twilio_request_is_refused(phone: TwilioPhone) -> None:
    phone.text("HOLA")
    captured = phone.params("2")
    signature = sign(URL, captured)
    assert phone.post(captured, signature).status_code == 200
    stored = count(Message)

    replay = {k: v for k, v in captured.items() if k != "NumMedia"}
    replay["MessageSid"] = captured["MessageSid"] + "NumMedia" + captured["NumMedia"]
    assert RequestValidator(TWILIO_TOKEN).validate(URL, replay, signature)  # the attack holds

    response = phone.post(replay, signature)
    assert 400 <= response.status_code < 500
    assert count(Message) == stored  # nothing stored, the conversation not advanced


@pytest.mark.parametrize(
    "sid",
    [
        "SM" + "0" * 31,  # too short
        "SM" + "0" * 33,  # too long
        "SM" + "A" * 32,  # Twilio SIDs are lowercase hex
        "XX" + "0" * 32,
        "SM" + "0" * 31 + "\x00",
        "SM" + "0" * 31 + "٣",  # a digit, but not an ASCII one
    ],
)
def test_twilio_message_sids_of_another_shape_are_refused(client: Any, sid: str) -> None:
    params = TwilioPhone(client).params("HOLA", sid)
    response = TwilioPhone(client).post(params)
    assert 400 <= response.status_code < 500
    assert count(Message) == 0


def test_a_twilio_mms_sid_is_a_message_id_too(phone: TwilioPhone) -> None:
    assert "1 Buscar servicios" in phone.text("HOLA", sid="MM" + "a" * 32)


@pytest.mark.parametrize(
    "message_id", ["", "x" * 101, "at\x00-1", "at-1\n", "<at-1>", "at 1", "ñ-1", "-at-1"]
)
def test_africastalking_message_ids_of_another_shape_are_refused(
    client: Any, message_id: str
) -> None:
    response = client.post(
        f"/webhooks/africastalking/{AT_TOKEN}/sms",
        data={"from": PERSON, "to": "12345", "text": "HOLA", "id": message_id},
    )
    assert 400 <= response.status_code < 500
    assert count(Message) == 0


@pytest.mark.parametrize(
    "number", ["+50688001122 ", "+50688001122x", "+5068800112２", "(+506) 8800-1122", "+0123456"]
)
def test_sender_numbers_must_be_plain_e164(client: Any, number: str) -> None:
    phone = TwilioPhone(client, number)
    assert 400 <= phone.post(phone.params("HOLA", sid="SM" + "c" * 32)).status_code < 500
    response = client.post(
        f"/webhooks/africastalking/{AT_TOKEN}/sms",
        data={"from": number, "to": "12345", "text": "HOLA", "id": "at-1"},
    )
    assert 400 <= response.status_code < 500
    assert count(Message) == 0
