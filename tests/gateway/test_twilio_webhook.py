"""Finding a service over Twilio's signed webhook; forged and unsigned requests refused."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from ruta.db import db
from ruta.models import Contact, ConversationSession, Message, MessageStatus
from tests.conftest import PUBLIC_BASE_URL, TwilioPhone, count, sign


def test_find_a_service_in_upala(phone: TwilioPhone) -> None:
    menu = phone.text("HOLA")
    assert "1 Buscar servicios" in menu
    assert "Upala" in phone.text("1")
    categories = phone.text("Upala")
    assert "Salud" in categories
    number = next(line.split()[0] for line in categories.splitlines() if "Salud" in line)
    services = phone.text(number)
    # Health services of Upala with their phones; the temporarily closed one last, with its notice.
    while "9 Mas" in services.splitlines()[-1]:
        services += "\n" + phone.text("9")
    assert "Ebais Upala Centro" in services
    assert "Tel +506 0000 0102" in services
    assert "Clinica temporal Upala Norte" in services and "Cerrado por ahora" in services
    assert "Comedor" not in services  # another category


def test_replies_are_logged_inline_with_cost(phone: TwilioPhone) -> None:
    phone.text("HOLA")
    with db.transaction() as session:
        out = session.scalars(select(Message).where(Message.direction == "out")).one()
        assert out.status == MessageStatus.REPLIED_INLINE.value
        assert out.segments == 1 and out.encoding == "GSM-7"
        assert out.in_reply_to_id is not None


@pytest.mark.parametrize(
    "signature",
    [
        "",  # unsigned
        "bm90IGEgc2lnbmF0dXJl",  # forged
        "signed-with-another-token",
    ],
)
def test_forged_or_unsigned_requests_are_refused(phone: TwilioPhone, signature: str) -> None:
    contacts_before = count(Contact)
    params = phone.params("HOLA")
    if signature == "signed-with-another-token":
        signature = sign(f"{PUBLIC_BASE_URL}/webhooks/twilio/sms", params, token="other")
    response = phone.post(params, signature=signature)
    assert response.status_code == 403
    assert count(Message) == 0
    assert count(Contact) == contacts_before
    assert count(ConversationSession) == 0


def test_signature_over_a_changed_body_is_refused(phone: TwilioPhone) -> None:
    params = phone.params("HOLA")
    signature = sign(f"{PUBLIC_BASE_URL}/webhooks/twilio/sms", params)
    params["Body"] = "BAJA"
    assert phone.post(params, signature=signature).status_code == 403
    assert count(Message) == 0


def test_unknown_twilio_parameters_are_signed_too(phone: TwilioPhone) -> None:
    params = phone.params("HOLA")
    params["SmsStatus"] = "received"
    params["FromCountry"] = "CR"
    assert phone.post(params).status_code == 200


def test_signed_request_without_from_gets_400(client: Any) -> None:
    params = {"MessageSid": "SM" + "1" * 32, "Body": "HOLA"}
    url = f"{PUBLIC_BASE_URL}/webhooks/twilio/sms"
    response = client.post(
        "/webhooks/twilio/sms", data=params, headers={"X-Twilio-Signature": sign(url, params)}
    )
    assert response.status_code == 400
    assert count(Message) == 0


def test_behind_a_trusted_proxy_the_forwarded_url_is_signed(app: Any, client: Any) -> None:
    from app import create_app

    proxied = create_app({**app.config, "PUBLIC_BASE_URL": None, "RUTA_TRUST_PROXY": True})
    phone = TwilioPhone(proxied.test_client())
    params = phone.params("HOLA")
    signature = sign("https://public.example.net/webhooks/twilio/sms", params)
    headers = {
        "X-Twilio-Signature": signature,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "public.example.net",
    }
    response = phone.client.post("/webhooks/twilio/sms", data=params, headers=headers)
    assert response.status_code == 200
    # Without trusting the proxy the same request is refused: the URL seen is the internal one.
    untrusted = create_app({**app.config, "PUBLIC_BASE_URL": None, "RUTA_TRUST_PROXY": False})
    params = phone.params("HOLA")
    headers["X-Twilio-Signature"] = sign("https://public.example.net/webhooks/twilio/sms", params)
    response = untrusted.test_client().post("/webhooks/twilio/sms", data=params, headers=headers)
    assert response.status_code == 403
