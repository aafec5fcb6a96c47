"""The webhooks people's messages come through, served as plain WSGI (gateway/lanes.py): the
same answers as the edge app gives, and every refusal the edge app's own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from werkzeug.test import Client

from gateway.lanes import form_pairs
from ruta.db import db
from ruta.models import Message
from tests.conftest import AT_TOKEN, PUBLIC_BASE_URL, TwilioPhone, sign
from tests.gateway.test_ussd import AtHandset

SMS_PATH = "/webhooks/twilio/sms"
SMS_URL = f"{PUBLIC_BASE_URL}{SMS_PATH}"


@pytest.fixture()
def dispatched(app: Flask) -> Iterator[list[str]]:
    """The paths the edge app's Flask dispatch served during the test."""
    edge: Flask = app.extensions["ruta.edge"]
    seen: list[str] = []

    def record() -> None:
        from flask import request

        seen.append(request.path)

    edge.before_request_funcs.setdefault(None, []).append(record)
    yield seen
    edge.before_request_funcs[None].remove(record)


@pytest.fixture()
def edge_client(app: Flask) -> Client:
    """A client of the edge app alone: what the webhooks answered before the lane."""
    return Client(app.extensions["ruta.edge"])


def answer(response: Any) -> tuple[int, str, str]:
    return response.status_code, response.headers["Content-Type"], response.get_data(as_text=True)


def test_messages_and_screens_do_not_go_through_flask(
    client: Any, phone: TwilioPhone, dispatched: list[str]
) -> None:
    assert "Buscar servicios" in phone.text("HOLA")
    handset = AtHandset(client, "+50688007101")
    assert handset.dial()
    response = client.post(
        f"/webhooks/africastalking/{AT_TOKEN}/sms",
        data={"from": "+50688007102", "to": "12345", "text": "HOLA", "id": "ATXid_lane1"},
    )
    assert response.status_code == 200
    assert dispatched == []
    assert client.get("/healthz").status_code == 200
    assert dispatched == ["/healthz"]  # the rest of the edge is the edge app


def test_an_answer_is_the_one_the_edge_app_gives(
    client: Any, edge_client: Client, dispatched: list[str]
) -> None:
    """The same message from two people, one through the lane, one through the edge app:
    the same status, content type and TwiML."""
    through_lane = TwilioPhone(client, "+50688007111")
    through_edge = TwilioPhone(edge_client, "+50688007112")
    for body in ("HOLA", "1"):
        lane, edge = (
            through_lane.post(through_lane.params(body)),
            through_edge.post(through_edge.params(body)),
        )
        assert answer(lane) == answer(edge)
        assert lane.headers["Content-Length"] == edge.headers["Content-Length"]
    assert dispatched == [SMS_PATH, SMS_PATH]  # only the edge client's
    ussd_lane, ussd_edge = AtHandset(client, "+50688007113"), AtHandset(edge_client, "+50688007114")
    assert ussd_lane.dial() == ussd_edge.dial()
    assert ussd_lane.press("1") == ussd_edge.press("1")


def refusals(phone: TwilioPhone) -> list[dict[str, Any]]:
    """Requests each webhook refuses, as keyword arguments of a test client's ``open``."""
    good = phone.params("HOLA")
    bad_from = {**phone.params("HOLA"), "From": "not a number"}
    bad_sid = {**phone.params("HOLA"), "MessageSid": "x"}
    at_sms = f"/webhooks/africastalking/{AT_TOKEN}/sms"
    at_ussd = f"/webhooks/africastalking/{AT_TOKEN}/ussd"
    return [
        # a signature that does not match: answered on the lane itself
        {"path": SMS_PATH, "method": "POST", "data": good, "headers": {"X-Twilio-Signature": "x"}},
        {"path": SMS_PATH, "method": "POST", "data": good},  # no signature at all
        # fields out of shape, signed: refused before anything is stored
        *(
            {
                "path": SMS_PATH,
                "method": "POST",
                "data": params,
                "headers": {"X-Twilio-Signature": sign(SMS_URL, params)},
            }
            for params in (bad_from, bad_sid)
        ),
        {"path": SMS_PATH, "method": "GET"},
        {
            "path": SMS_PATH,
            "method": "POST",
            "data": json.dumps(good),
            "content_type": "application/json",
        },
        {
            "path": SMS_PATH,
            "method": "POST",
            "data": b"Body=%ff%fe",
            "content_type": "application/x-www-form-urlencoded",
        },
        {
            "path": "/webhooks/africastalking/wrong-token/ussd",
            "method": "POST",
            "data": {"sessionId": "ATUid_1", "phoneNumber": "+50688001122", "text": ""},
        },
        {
            "path": "/webhooks/africastalking/wrong-token/sms",
            "method": "POST",
            "data": {"from": "+50688001122", "text": "HOLA", "id": "ATXid_1"},
        },
        {
            "path": at_ussd,
            "method": "POST",
            "data": {"sessionId": "", "phoneNumber": "+50688001122", "text": ""},
        },
        {
            "path": at_ussd,
            "method": "POST",
            "data": {"sessionId": "ATUid_2", "phoneNumber": "12", "text": ""},
        },
        {"path": at_sms, "method": "POST", "data": {"from": "+50688001122", "text": "HOLA"}},
        {
            "path": "/webhooks/africastalking//ussd",
            "method": "POST",
            "data": {"sessionId": "ATUid_3"},
        },
    ]


def test_every_refusal_is_the_edge_apps_own(
    client: Any, edge_client: Client, phone: TwilioPhone, dispatched: list[str]
) -> None:
    for request in refusals(phone):
        lane, edge = client.open(**request), edge_client.open(**request)
        assert lane.status_code >= 400, request
        assert answer(lane) == answer(edge), request


def test_a_refused_request_stores_nothing(client: Any, phone: TwilioPhone) -> None:
    from ruta.models import Message
    from tests.conftest import count

    before = count(Message)
    for request in refusals(phone):
        client.open(**request)
    assert count(Message) == before


def post_signed(client: Any, params: dict[str, str], charset: str) -> Any:
    """Twilio's form, signed, its content type stating ``charset``."""
    from urllib.parse import urlencode

    return client.post(
        SMS_PATH,
        data=urlencode(params).encode(),
        content_type=f"application/x-www-form-urlencoded; charset={charset}",
        headers={"X-Twilio-Signature": sign(SMS_URL, params)},
    )


def test_a_form_stating_its_utf8_charset_takes_the_lane_and_keeps_its_accents(
    client: Any, dispatched: list[str]
) -> None:
    phone = TwilioPhone(client, "+50688007121")
    phone.text("HOLA")
    params = phone.params("Jiménez")  # a place typed with its accent
    assert post_signed(client, params, "UTF-8").status_code == 200
    assert dispatched == []
    with db.transaction() as session:
        stored = session.scalar(
            select(Message.body)
            .where(Message.provider_message_id == params["MessageSid"])
            .where(Message.direction == "in")
        )
    assert stored == "Jiménez"
    assert post_signed(client, phone.params("1"), "ISO-8859-1").status_code == 200
    assert dispatched == [SMS_PATH]  # another charset: the edge app reads it, as before


# The lane's form parser reads what the standard library's reads, on any text: names and values
# with "+", "%" escapes (valid, broken, of bytes that are not UTF-8), empty fields, no "=".
_FORM_TEXT = st.lists(
    st.one_of(
        st.text(alphabet="ab=+%&20C3A9ff;é", max_size=12),
        st.sampled_from(["%2B", "%zz", "%C3%A9", "%FF", "a=b=c", "=", "&&", "+=+"]),
    ),
    max_size=8,
).map("".join)


@given(text=_FORM_TEXT)
@settings(max_examples=400)
def test_the_lanes_form_parser_reads_what_parse_qsl_reads(text: str) -> None:
    expected = parse_qsl(text, keep_blank_values=True, errors="werkzeug.url_quote")
    assert form_pairs(text) == expected


_NAMES = st.sampled_from(["Body", "From", "To", "MessageSid", "b", "B", "a_1"])
_VALUES = st.text(alphabet="ab +1é&=%", max_size=6)


@given(pairs=st.lists(st.tuples(_NAMES, _VALUES), max_size=8))
@settings(max_examples=200)
def test_the_signature_is_twilios_over_repeated_and_unordered_fields(
    pairs: list[tuple[str, str]],
) -> None:
    from twilio.request_validator import RequestValidator

    from gateway.twilio_sms import signed

    form = MultiDict(pairs)
    validator = RequestValidator("token")
    genuine = validator.compute_signature(SMS_URL, form)
    assert signed("token", genuine, SMS_URL, form)
    assert validator.validate(SMS_URL, form, genuine)
    assert not signed("token", genuine, SMS_URL, MultiDict([*pairs, ("Extra", "1")]))
