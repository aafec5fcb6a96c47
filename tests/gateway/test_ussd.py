"""USSD: the same flows over Africa's Talking (cumulative text) and a JSON aggregator, within
182 characters a screen, resumable after a drop."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from flows.context import Budget
from flows.engine import Engine
from flows.loader import load_directory
from flows.testing import run_all
from flows.validate import validate_library
from providers.fake_provider import FakeProviderServer
from ruta.db import db
from ruta.directory import DatabaseServices
from tests.conftest import AT_TOKEN, PERSON, USSD_JSON_TOKEN, Clock

_sessions = itertools.count(1)


class AtHandset:
    """A handset dialling *123# through Africa's Talking: ``text`` carries every input so far."""

    def __init__(self, client: Any, number: str = PERSON) -> None:
        self.client, self.number = client, number
        self.session_id = f"ATUid_{next(_sessions):06d}"
        self.inputs: list[str] = []

    def post(self, text: str) -> tuple[str, str]:
        response = self.client.post(
            f"/webhooks/africastalking/{AT_TOKEN}/ussd",
            data={
                "sessionId": self.session_id,
                "serviceCode": "*123#",
                "phoneNumber": self.number,
                "networkCode": "71201",
                "text": text,
            },
        )
        assert response.status_code == 200, response.data
        assert response.mimetype == "text/plain"
        body = response.get_data(as_text=True)
        kind, _, screen = body.partition(" ")
        assert kind in ("CON", "END"), body
        assert len(screen) <= 182, (len(screen), screen)
        return kind, screen

    def dial(self) -> str:
        return self.post("")[1]

    def press(self, key: str) -> tuple[str, str]:
        self.inputs.append(key)
        return self.post("*".join(self.inputs))


class JsonHandset:
    def __init__(self, client: Any, number: str = PERSON) -> None:
        self.client, self.number = client, number.lstrip("+")
        self.session_id = f"json-{next(_sessions):06d}"
        self.sequence = 0

    def post(self, kind: str, message: str = "") -> dict[str, Any]:
        self.sequence += 1
        response = self.client.post(
            f"/webhooks/ussd/json/{USSD_JSON_TOKEN}",
            json={
                "Type": kind,
                "SessionId": self.session_id,
                "Mobile": self.number,
                "ServiceCode": "*123#",
                "Message": message,
                "Sequence": self.sequence,
            },
        )
        assert response.status_code == 200, response.data
        body = response.get_json()
        assert len(body["Message"]) <= 182
        return body  # type: ignore[no-any-return]


def test_find_a_service_over_africastalking_ends_with_an_sms(
    phone_worker: Callable[[], None], client: Any, fake_provider: FakeProviderServer
) -> None:
    handset = AtHandset(client)
    assert "1 Buscar servicios" in handset.dial()
    kind, places = handset.press("1")
    assert kind == "CON" and "5 Upala" in places and "6 Otro pais" in places
    assert "Escazu" in places  # transliterated for handsets: no accents
    kind, kinds = handset.press("5")
    assert kind == "CON" and "1 Salud" in kinds
    kind, found = handset.press("1")
    assert kind == "CON" and "1 Recibir todo por SMS" in found
    assert "Upala" in found and "Tel +506 0000 010" in found
    kind, bye = handset.press("1")
    assert kind == "END" and "SMS" in bye
    assert fake_provider.messages() == []
    phone_worker()
    sms = fake_provider.messages()
    assert len(sms) == 1 and sms[0]["to"] == PERSON
    assert "Ebais Upala Centro" in sms[0]["body"] and "Consulta movil Upala" in sms[0]["body"]
    assert "Tel +506 0000 0102" in sms[0]["body"]


def test_back_paging_repeat_and_invalid_choice(client: Any) -> None:
    handset = AtHandset(client, number="+14155550123")  # no places of its own: all, paged
    handset.dial()
    invalid = handset.press("7")[1]
    assert "No entendimos" in invalid and "1 Buscar servicios" in invalid
    handset.inputs.pop()  # AT keeps the path; we retype from the menu
    handset.inputs.append("7")
    first_page = handset.press("1")[1]
    assert "9 Mas" in first_page and "Puebla" not in first_page
    second_page = handset.press("9")[1]
    assert "Puebla" in second_page and "Upala" not in second_page
    repeated = handset.post("*".join(handset.inputs))[1]  # the same request again
    assert repeated == second_page
    back = handset.press("0")[1]
    assert back == first_page  # back from page 2 is page 1
    assert "tipo de servicio" in handset.press("5")[1]
    assert "municipio" in handset.press("0")[1]  # back to the previous question
    assert "tipo de servicio" in handset.press("3")[1]  # Los Chiles


def test_the_same_walk_over_the_json_aggregator(
    phone_worker: Callable[[], None], client: Any, fake_provider: FakeProviderServer
) -> None:
    handset = JsonHandset(client)
    assert "1 Buscar servicios" in handset.post("Initiation", "*123#")["Message"]
    places = handset.post("Response", "1")
    assert places["Type"] == "Response" and "Escazú" in places["Message"]  # not transliterated
    assert "Salud" in handset.post("Response", "upala")["Message"]
    found = handset.post("Response", "salud")
    assert "Recibir todo por SMS" in found["Message"]
    bye = handset.post("Response", "1")
    assert bye["Type"] == "Release"
    phone_worker()
    assert "Ebais Upala Centro" in fake_provider.messages()[0]["body"]
    assert handset.post("Release")["Type"] == "Release"


def test_a_repeated_json_request_advances_nothing(client: Any) -> None:
    handset = JsonHandset(client)
    handset.post("Initiation")
    places = handset.post("Response", "1")["Message"]
    handset.sequence -= 1  # the aggregator resends the same request
    assert handset.post("Response", "1")["Message"] == places


def test_drop_and_redial_within_five_minutes_continues(app: Flask, client: Any) -> None:
    clock = Clock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    app.extensions["ruta.clock"] = clock
    first = AtHandset(client)
    first.dial()
    first.press("1")
    assert "tipo de servicio" in first.press("5")[1]
    # The call drops: no END was sent. The provider's notice says so.
    events = client.post(
        f"/webhooks/africastalking/{AT_TOKEN}/ussd/events",
        data={"sessionId": first.session_id, "status": "Incomplete"},
    )
    assert events.status_code == 200
    clock.now += timedelta(minutes=4)
    again = AtHandset(client)
    offer = again.dial()
    assert "se corto" in offer and "1 Continuar" in offer and "2 Empezar de nuevo" in offer
    assert "tipo de servicio" in again.press("1")[1]  # where they were
    assert "Upala" in again.press("1")[1]  # and it goes on: Salud in Upala


def test_redial_after_five_minutes_starts_over(app: Flask, client: Any) -> None:
    clock = Clock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    app.extensions["ruta.clock"] = clock
    first = AtHandset(client)
    first.dial()
    first.press("1")
    clock.now += timedelta(minutes=6)
    assert "1 Buscar servicios" in AtHandset(client).dial()


def test_restart_from_the_resume_offer(app: Flask, client: Any) -> None:
    first = AtHandset(client)
    first.dial()
    first.press("1")
    again = AtHandset(client)
    assert "1 Continuar" in again.dial()
    assert "1 Buscar servicios" in again.press("2")[1]


def test_a_finished_session_is_not_offered_again(client: Any) -> None:
    first = AtHandset(client)
    first.dial()
    first.press("4")  # the alerts menu
    assert first.press("2")[0] == "END"  # "my alerts": none, an END screen
    assert "1 Buscar servicios" in AtHandset(client).dial()


def test_not_safe_reaches_the_emergency_numbers_within_three_screens(client: Any) -> None:
    handset = AtHandset(client)
    screens = [handset.dial(), handset.press("2")[1], handset.press("2")[1]]
    assert "lugar seguro" in screens[1]
    # The numbers at once; a reference only once the request has somewhere to go.
    assert "911" in screens[2] and "referencia" not in screens[2].lower()


def test_every_screen_of_every_default_flow_fits_182(app: Flask) -> None:
    library = load_directory()
    errors = [i for i in validate_library(library, [Budget.ussd(182)]) if i.error]
    assert errors == []
    # And at run time: every reply of every example conversation, in USSD mode.
    engine = Engine(library)
    with db.transaction() as session:
        results = run_all(
            engine, DatabaseServices(session, channel="test", contact_id=None), Budget.ussd(182)
        )
        replies = [reply for r in results for _, reply in r.transcript]
        session.rollback()
    assert len(replies) > 30
    too_long = [r for r in replies if len(r) > 182]
    assert too_long == []


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"sessionId": "x"},
        {"sessionId": "x", "phoneNumber": "nope"},
        {"sessionId": "x" * 300, "phoneNumber": PERSON},
    ],
)
def test_malformed_ussd_requests_get_400(client: Any, form: dict[str, str]) -> None:
    response = client.post(f"/webhooks/africastalking/{AT_TOKEN}/ussd", data=form)
    assert response.status_code == 400


def test_wrong_tokens_are_404(client: Any) -> None:
    assert client.post("/webhooks/africastalking/nope/ussd", data={}).status_code == 404
    assert client.post("/webhooks/ussd/json/nope", json={}).status_code == 404


@pytest.fixture()
def phone_worker(worker: Callable[[], None]) -> Callable[[], None]:
    return worker
