"""No request of any shape produces a 5xx: a property-based fuzz over every webhook.

Each request carries a valid signature or token, so it reaches the code that reads the fields.
Values mix plausible ones (real numbers, well-shaped ids) with anything at all, so both the
checks and what lies past them are exercised. The hostile requests of issue 12 are explicit
examples. A 5xx, a traceback in a response or an error in the log fails the property.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ruta.models import Message, UssdSession
from tests.conftest import AT_TOKEN, PERSON, PUBLIC_BASE_URL, USSD_JSON_TOKEN, count, sign

FUZZ = settings(
    max_examples=30,
    deadline=None,  # the database sets the pace; no test here is about time
    database=None,  # nothing written to the working tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SID = "SM" + "5" * 32
NUL = "\x00"

anything = st.text(max_size=40)
hostile = st.sampled_from(
    [
        "",
        NUL,
        f"SM{'0' * 31}{NUL}",
        "A" * 2000,
        "\r\nSet-Cookie: x=y",
        "2147483648",
        "-1",
        "+881632123456",
        "+8821612345678",
        "../../etc/passwd",
        "<Message>x</Message>",
        "%00",
        "١٢٣٤٥٦٧٨",
    ]
)
number = st.sampled_from([PERSON, "+881632123456", "+8821612345678", "50688001122", "+1"])


def field(plausible: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    """A form value: left out (None), plausible, hostile or anything."""
    return st.one_of(st.none(), plausible, hostile, anything)


def form(**fields: st.SearchStrategy[str | None]) -> st.SearchStrategy[dict[str, str]]:
    extra = st.dictionaries(anything, anything, max_size=3)
    known = st.fixed_dictionaries(fields)
    return st.builds(
        lambda k, e: {**e, **{name: v for name, v in k.items() if v is not None}}, known, extra
    )


@pytest.fixture()
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.WARNING)
    yield caplog


def check(response: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert response.status_code < 500, response.data
    assert b"Traceback" not in response.data
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]


def post_twilio(client: Any, path: str, params: dict[str, str]) -> Any:
    signature = sign(f"{PUBLIC_BASE_URL}{path}", params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


TWILIO_SMS = form(
    MessageSid=field(st.just(SID)),
    AccountSid=field(st.just("AC" + "0" * 32)),
    From=field(number),
    To=field(st.just("+15005550006")),
    Body=field(st.sampled_from(["HOLA", "1", "2", "PREGUNTA", "STOP"])),
    NumMedia=field(st.just("0")),
)


@FUZZ
@given(params=TWILIO_SMS)
@example(params={"MessageSid": f"SM{'0' * 31}{NUL}", "From": PERSON, "Body": "HOLA"})
@example(params={"MessageSid": SID + "NumMedia0", "From": PERSON, "Body": "2"})
@example(params={"MessageSid": SID, "From": f"{PERSON}{NUL}", "Body": "HOLA"})
@example(params={"MessageSid": SID, "From": "+881632123456", "Body": "PREGUNTA"})
def test_twilio_sms(client: Any, no_errors_logged: Any, params: dict[str, str]) -> None:
    check(post_twilio(client, "/webhooks/twilio/sms", params), no_errors_logged)


TWILIO_STATUS = form(
    MessageSid=field(st.just(SID)),
    MessageStatus=field(st.sampled_from(["sent", "delivered", "undelivered", "failed"])),
    ErrorCode=field(st.just("30003")),
    To=field(number),
)


@FUZZ
@given(params=TWILIO_STATUS)
@example(params={"MessageSid": f"SM{NUL}", "MessageStatus": "delivered"})
@example(params={"MessageSid": SID, "MessageStatus": "failed", "ErrorCode": f"3{NUL}"})
def test_twilio_status(client: Any, no_errors_logged: Any, params: dict[str, str]) -> None:
    check(post_twilio(client, "/webhooks/twilio/status", params), no_errors_logged)


AT_SMS = form(
    id=field(st.just("a3c8f8e0-1b2c-4d5e-8f90-123456789abc")),
    to=field(st.just("12345")),
    text=field(st.sampled_from(["HOLA", "1", "PREGUNTA"])),
    date=field(st.just("2026-11-23 10:00:00")),
    linkId=field(st.just("")),
    **{"from": field(number)},
)


@FUZZ
@given(data=AT_SMS)
@example(data={"id": f"at{NUL}1", "from": PERSON, "text": "HOLA"})
def test_africastalking_sms(client: Any, no_errors_logged: Any, data: dict[str, str]) -> None:
    response = client.post(f"/webhooks/africastalking/{AT_TOKEN}/sms", data=data)
    check(response, no_errors_logged)


AT_DELIVERY = form(
    id=field(st.just("ATXid_" + "0" * 32)),
    status=field(st.sampled_from(["Success", "Failed", "Rejected", "Sent"])),
    phoneNumber=field(number),
    networkCode=field(st.just("63902")),
    failureReason=field(st.just("InsufficientCredit")),
    retryCount=field(st.just("0")),
)


@FUZZ
@given(data=AT_DELIVERY)
@example(data={"id": f"ATXid_{NUL}", "status": "Success"})
@example(data={"id": "ATXid_1", "status": "Failed", "failureReason": f"x{NUL}"})
def test_africastalking_delivery(client: Any, no_errors_logged: Any, data: dict[str, str]) -> None:
    response = client.post(f"/webhooks/africastalking/{AT_TOKEN}/delivery", data=data)
    check(response, no_errors_logged)


AT_USSD = form(
    sessionId=field(st.just("ATUid_fuzz")),
    serviceCode=field(st.just("*123#")),
    phoneNumber=field(number),
    networkCode=field(st.just("71201")),
    text=field(st.sampled_from(["", "1", "1*5", "1*5*1*1", "2*1*1"])),
)


@FUZZ
@given(data=AT_USSD)
@example(data={"sessionId": f"ATUid_{NUL}", "phoneNumber": PERSON, "text": ""})
@example(data={"sessionId": "ATUid_x", "phoneNumber": PERSON, "serviceCode": f"*1{NUL}#"})
def test_africastalking_ussd(client: Any, no_errors_logged: Any, data: dict[str, str]) -> None:
    response = client.post(f"/webhooks/africastalking/{AT_TOKEN}/ussd", data=data)
    check(response, no_errors_logged)


AT_USSD_EVENTS = form(
    sessionId=field(st.just("ATUid_fuzz")),
    status=field(st.sampled_from(["Success", "Incomplete", "Failed"])),
    phoneNumber=field(number),
    durationInMillis=field(st.just("1200")),
)


@FUZZ
@given(data=AT_USSD_EVENTS)
@example(data={"sessionId": f"ATUid_{NUL}", "status": "Success"})
def test_africastalking_ussd_events(
    client: Any, no_errors_logged: Any, data: dict[str, str]
) -> None:
    response = client.post(f"/webhooks/africastalking/{AT_TOKEN}/ussd/events", data=data)
    check(response, no_errors_logged)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | anything | hostile,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(anything, inner, max_size=3),
    max_leaves=8,
)


def json_field(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(plausible, json_values)


JSON_USSD = st.fixed_dictionaries(
    {},
    optional={
        "Type": json_field(st.sampled_from(["Initiation", "Response", "Release", "Timeout"])),
        "SessionId": json_field(st.just("json-fuzz")),
        "Mobile": json_field(st.sampled_from(["50688001122", "881632123456", 50688001122])),
        "ServiceCode": json_field(st.just("*123#")),
        "Message": json_field(st.sampled_from(["", "1", "5", "98"])),
        "Sequence": json_field(st.integers(min_value=0, max_value=2**32)),
    },
)
DEEP = b"[" * 3000 + b"]" * 3000


@FUZZ
@given(body=st.one_of(JSON_USSD.map(lambda b: json.dumps(b).encode()), st.binary(max_size=60)))
@example(body=json.dumps({"Type": "Release", "SessionId": 12345}).encode())
@example(body=json.dumps({"Type": "Timeout", "SessionId": ["x"]}).encode())
@example(body=json.dumps({"Type": "Release", "SessionId": f"s{NUL}"}).encode())
@example(body=DEEP)
@example(body=b'{"Type": "Initiation", "SessionId": "s", "x": ' + DEEP + b"}")
@example(
    body=json.dumps(
        {"Type": "Initiation", "SessionId": "seq", "Mobile": "50688001122", "Sequence": 2**31}
    ).encode()
)
@example(body=json.dumps({"Type": "Initiation", "SessionId": f"s{NUL}", "Mobile": PERSON}).encode())
def test_json_ussd(client: Any, no_errors_logged: Any, body: bytes) -> None:
    response = client.post(
        f"/webhooks/ussd/json/{USSD_JSON_TOKEN}", data=body, content_type="application/json"
    )
    check(response, no_errors_logged)


# --- the concrete cases, checked for what is stored (PostgreSQL would refuse them) ----------


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/webhooks/twilio/sms", {"MessageSid": f"SM{'0' * 31}{NUL}", "From": PERSON}),
        ("/webhooks/twilio/sms", {"MessageSid": SID, "From": f"{PERSON}{NUL}"}),
        (f"/webhooks/africastalking/{AT_TOKEN}/sms", {"id": f"at{NUL}1", "from": PERSON}),
        (
            f"/webhooks/africastalking/{AT_TOKEN}/ussd",
            {"sessionId": f"ATUid_{NUL}", "phoneNumber": PERSON, "text": ""},
        ),
    ],
)
def test_nul_in_ids_and_numbers_is_refused_before_the_database(
    client: Any, path: str, data: dict[str, str]
) -> None:
    data = {**data, "Body": "HOLA", "text": ""}
    signed = "twilio" in path
    response = post_twilio(client, path, data) if signed else client.post(path, data=data)
    assert 400 <= response.status_code < 500
    assert count(Message) == 0 and count(UssdSession) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"Type": "Initiation", "SessionId": "seq", "Mobile": "50688001122", "Sequence": 2**31},
        {"Type": "Initiation", "SessionId": "seq", "Mobile": "50688001122", "Sequence": True},
        {"Type": "Initiation", "SessionId": f"s{NUL}", "Mobile": "50688001122"},
        {"Type": "Release", "SessionId": 12345},
        {"Type": "Timeout", "SessionId": {"id": "x"}},
        {"Type": ["Initiation"], "SessionId": "s", "Mobile": "50688001122"},
        {"Type": "Response", "SessionId": "s", "Mobile": "50688001122", "Message": 7},
    ],
)
def test_json_ussd_fields_of_the_wrong_type_or_range_are_400(
    client: Any, body: dict[str, Any]
) -> None:
    response = client.post(f"/webhooks/ussd/json/{USSD_JSON_TOKEN}", json=body)
    assert response.status_code == 400
    assert count(UssdSession) == 0


def test_a_deeply_nested_json_body_is_400(client: Any) -> None:
    response = client.post(
        f"/webhooks/ussd/json/{USSD_JSON_TOKEN}", data=DEEP, content_type="application/json"
    )
    assert response.status_code == 400
