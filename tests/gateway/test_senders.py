"""Real Twilio / Africa's Talking SDK senders against the fake provider on loopback."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from africastalking.SMS import SMSService

from providers.fake_provider import FakeProviderServer
from providers.senders import (
    AfricasTalkingSender,
    OutcomeUnknown,
    SendError,
    TwilioSender,
    _redirect_at_service,
    build_sender,
)

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-token"
FROM = "+15005550006"
TO = "+50688887777"
TO2 = "+254711000222"
BODY = "Su cita es el martes a las 9"


@pytest.fixture()
def fake(fake_provider: FakeProviderServer) -> Iterator[FakeProviderServer]:
    fake_provider.reset()
    yield fake_provider
    fake_provider.reset()


@pytest.fixture()
def twilio(fake: FakeProviderServer) -> TwilioSender:
    return TwilioSender(ACCOUNT_SID, AUTH_TOKEN, FROM, api_base_url=fake.url, timeout=5)


@pytest.fixture()
def at(fake: FakeProviderServer) -> AfricasTalkingSender:
    return AfricasTalkingSender(
        "ruta", "at-key", sender_id="RUTA", api_base_url=fake.url, timeout=5
    )


def test_twilio_send_is_recorded_exactly(twilio: TwilioSender, fake: FakeProviderServer) -> None:
    result = twilio.send(TO, BODY, status_callback="https://ruta.example/cb/twilio")

    assert result.provider == "twilio"
    assert result.provider_message_id.startswith("SM")
    assert len(result.provider_message_id) == 34
    assert result.status == "queued"
    assert result.segments == 1
    [msg] = fake.messages("twilio")
    assert msg["to"] == TO
    assert msg["from"] == FROM
    assert msg["body"] == BODY
    assert msg["id"] == result.provider_message_id
    assert msg["status_callback"] == "https://ruta.example/cb/twilio"
    assert fake.messages("africastalking") == []


def test_twilio_messaging_service_sid(fake: FakeProviderServer) -> None:
    service_sid = "MG" + "1" * 32
    sender = TwilioSender(ACCOUNT_SID, AUTH_TOKEN, service_sid, api_base_url=fake.url)

    result = sender.send(TO, "x" * 161)

    assert result.status == "accepted"
    assert result.segments == 2
    assert fake.messages()[0]["from"] == service_sid


def test_at_send_is_recorded(at: AfricasTalkingSender, fake: FakeProviderServer) -> None:
    result = at.send(TO2, BODY)

    assert result.provider == "africastalking"
    assert result.provider_message_id.startswith("ATXid_")
    assert result.status == "Success"
    [msg] = fake.messages("africastalking")
    assert (msg["to"], msg["from"], msg["body"]) == (TO2, "RUTA", BODY)
    assert msg["id"] == result.provider_message_id


def test_at_multi_recipient_records_each(fake: FakeProviderServer) -> None:
    service = SMSService("ruta", "at-key")
    _redirect_at_service(service, fake.url)

    answer = service.send(BODY, [TO, TO2], timeout=5)

    assert isinstance(answer, dict), "fake must answer exactly application/json"
    recipients = answer["SMSMessageData"]["Recipients"]
    assert [r["number"] for r in recipients] == [TO, TO2]
    assert answer["SMSMessageData"]["Message"].startswith("Sent to 2/2")
    recorded = fake.messages("africastalking")
    assert sorted(m["to"] for m in recorded) == sorted([TO, TO2])
    assert {m["id"] for m in recorded} == {r["messageId"] for r in recipients}


def test_at_sdk_still_has_base_url_and_redirect_reaches_fake(fake: FakeProviderServer) -> None:
    service = SMSService("ruta", "at-key")
    # If an SDK upgrade renames _baseUrl, _redirect_at_service would silently stop working.
    assert service._baseUrl == "https://api.africastalking.com/version1"
    assert service._make_url("/messaging") == service._baseUrl + "/messaging"

    _redirect_at_service(service, fake.url + "/")

    assert service._make_url("/messaging") == fake.url + "/version1/messaging"
    service.send(BODY, [TO2], timeout=5)
    assert [m["to"] for m in fake.messages()] == [TO2]


def test_twilio_opted_out_is_permanent(twilio: TwilioSender, fake: FakeProviderServer) -> None:
    fake.fail_number("twilio", TO, 21610)

    with pytest.raises(SendError) as info:
        twilio.send(TO, BODY)

    assert info.value.permanent is True
    assert info.value.code == "21610"
    assert fake.messages() == []


@pytest.mark.parametrize("code", [21211, 21612, 21614])
def test_twilio_invalid_numbers_are_permanent(
    twilio: TwilioSender, fake: FakeProviderServer, code: int
) -> None:
    fake.fail_number("twilio", TO, code)

    with pytest.raises(SendError) as info:
        twilio.send(TO, BODY)

    assert (info.value.permanent, info.value.code) == (True, str(code))
    # The fake quotes the number in its error message, as Twilio does; we must not.
    assert TO not in str(info.value)
    assert TO not in repr(info.value)
    assert info.value.__cause__ is None


def test_at_blacklisted_is_permanent(at: AfricasTalkingSender, fake: FakeProviderServer) -> None:
    fake.fail_number("africastalking", TO2)

    with pytest.raises(SendError) as info:
        at.send(TO2, BODY)

    assert info.value.permanent is True
    assert info.value.code == "406"
    assert fake.messages() == []


def test_at_invalid_number_format_is_permanent_and_redacted(at: AfricasTalkingSender) -> None:
    with pytest.raises(SendError) as info:
        at.send("0711000222", BODY)

    assert info.value.permanent is True
    assert "0711000222" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize("code", [405, 407, 500, 502])
def test_at_transient_recipient_codes(
    at: AfricasTalkingSender, fake: FakeProviderServer, code: int
) -> None:
    fake.fail_number("africastalking", TO2, code)

    with pytest.raises(SendError) as info:
        at.send(TO2, BODY)

    assert (info.value.permanent, info.value.code) == (False, str(code))


def test_twilio_scripted_500_is_transient(twilio: TwilioSender, fake: FakeProviderServer) -> None:
    fake.script("twilio", [{"http_status": 500}])

    with pytest.raises(SendError) as info:
        twilio.send(TO, BODY)

    assert info.value.permanent is False
    assert fake.messages() == []


def test_twilio_429_is_transient(twilio: TwilioSender, fake: FakeProviderServer) -> None:
    fake.script("twilio", [429])

    with pytest.raises(SendError) as info:
        twilio.send(TO, BODY)

    assert (info.value.permanent, info.value.code) == (False, "20429")


def test_twilio_500_500_then_success(twilio: TwilioSender, fake: FakeProviderServer) -> None:
    fake.script("twilio", [{"http_status": 500}, {"http_status": 500}])

    for _ in range(2):
        with pytest.raises(SendError) as info:
            twilio.send(TO, BODY)
        assert info.value.permanent is False
    result = twilio.send(TO, BODY)

    assert [m["id"] for m in fake.messages()] == [result.provider_message_id]


def test_at_500_500_then_success(at: AfricasTalkingSender, fake: FakeProviderServer) -> None:
    requests.post(
        fake.url + "/_fake/script",
        json={"provider": "africastalking", "responses": [{"http_status": 500}] * 2},
        timeout=5,
    ).raise_for_status()

    for _ in range(2):
        with pytest.raises(SendError) as info:
            at.send(TO2, BODY)
        assert info.value.permanent is False
    result = at.send(TO2, BODY)

    assert [m["id"] for m in fake.messages()] == [result.provider_message_id]


def test_at_non_json_answer_is_transient(
    at: AfricasTalkingSender, fake: FakeProviderServer
) -> None:
    # The SDK returns the text when the content type carries a charset.
    fake.script(
        "africastalking",
        [{"http_status": 201, "body": "{}", "content_type": "application/json; charset=utf-8"}],
    )

    with pytest.raises(SendError) as info:
        at.send(TO2, BODY)

    assert (info.value.permanent, info.value.code) == (False, "bad_response")


def test_no_answer_in_time_is_an_unknown_outcome(fake: FakeProviderServer) -> None:
    """The request reached the provider, the answer did not come: it may have the message."""
    sender = TwilioSender(ACCOUNT_SID, AUTH_TOKEN, FROM, api_base_url=fake.url, timeout=0.2)
    # A 5xx answer, so the late reply records nothing into later tests.
    fake.script("twilio", [{"http_status": 500, "delay": 0.6}])

    with pytest.raises(OutcomeUnknown) as info:
        sender.send(TO, BODY)

    assert (info.value.permanent, info.value.code) == (False, "no_answer")
    assert "Timeout" in str(info.value)


def test_connection_refused_is_transient_and_known_unsent() -> None:
    with FakeProviderServer() as srv:
        url = srv.url
    sender = AfricasTalkingSender("ruta", "at-key", api_base_url=url, timeout=1)

    with pytest.raises(SendError) as info:
        sender.send(TO2, BODY)

    assert info.value.permanent is False
    assert not isinstance(info.value, OutcomeUnknown)  # nothing reached the provider


def test_twilio_requires_basic_auth(fake: FakeProviderServer) -> None:
    url = f"{fake.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    form = {"To": TO, "From": FROM, "Body": BODY}

    anonymous = requests.post(url, data=form, timeout=5)
    authed = requests.post(url, data=form, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5)

    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == 20003
    assert authed.status_code == 201
    assert authed.json()["sid"] == fake.messages()[0]["id"]
    assert len(fake.messages()) == 1


def test_at_requires_api_key(fake: FakeProviderServer) -> None:
    url = f"{fake.url}/version1/messaging"
    form = {"username": "ruta", "to": TO2, "message": BODY, "bulkSMSMode": "1"}

    anonymous = requests.post(url, data=form, timeout=5)
    authed = requests.post(url, data=form, headers={"apiKey": "k"}, timeout=5)

    assert anonymous.status_code == 401
    assert authed.status_code == 201
    assert authed.headers["Content-Type"] == "application/json"
    assert len(fake.messages()) == 1


def test_send_error_never_holds_number_or_body(
    twilio: TwilioSender, at: AfricasTalkingSender, fake: FakeProviderServer
) -> None:
    fake.fail_number("twilio", TO, 21211)
    fake.fail_number("africastalking", TO2, 403)
    errors: list[SendError] = []
    for sender, number in ((twilio, TO), (at, TO2)):
        with pytest.raises(SendError) as info:
            sender.send(number, BODY)
        errors.append(info.value)

    assert len(errors) == 2
    for err in errors:
        for text in (str(err), repr(err), str(err.args)):
            assert TO not in text and TO2 not in text
            assert BODY not in text
            assert TO[1:] not in text and TO2[-9:] not in text


def test_control_endpoints_share_state(fake: FakeProviderServer) -> None:
    requests.post(
        fake.url + "/_fake/script",
        json={"provider": "twilio", "fail_numbers": {TO: 21610}},
        timeout=5,
    ).raise_for_status()
    sender = TwilioSender(ACCOUNT_SID, AUTH_TOKEN, FROM, api_base_url=fake.url)
    with pytest.raises(SendError):
        sender.send(TO, BODY)
    sender.send(TO2, BODY)

    listed = requests.get(fake.url + "/_fake/messages", timeout=5).json()
    assert [m["to"] for m in listed] == [TO2] == [m["to"] for m in fake.messages()]
    assert requests.delete(fake.url + "/_fake/messages", timeout=5).status_code == 200
    assert fake.messages() == []
    sender.send(TO, BODY)  # the failing number was reset too
    assert len(fake.messages()) == 1


def test_build_sender_reads_config(fake: FakeProviderServer) -> None:
    twilio = build_sender(
        "twilio",
        {
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM_NUMBER": FROM,
            "TWILIO_API_BASE_URL": fake.url,
        },
    )
    at = build_sender(
        "africastalking",
        {
            "AT_USERNAME": "ruta",
            "AT_API_KEY": "k",
            "AT_SENDER_ID": "RUTA",
            "AT_API_BASE_URL": fake.url,
        },
    )

    assert isinstance(twilio, TwilioSender) and twilio.provider == "twilio"
    assert isinstance(at, AfricasTalkingSender) and at.provider == "africastalking"
    twilio.send(TO, BODY)
    at.send(TO2, BODY)
    assert [(m["provider"], m["from"]) for m in fake.messages()] == [
        ("twilio", FROM),
        ("africastalking", "RUTA"),
    ]


def test_build_sender_missing_api_key() -> None:
    with pytest.raises(ValueError, match="AT_API_KEY"):
        build_sender("africastalking", {"AT_USERNAME": "ruta", "AT_API_KEY": ""})
    with pytest.raises(ValueError, match="TWILIO_AUTH_TOKEN"):
        build_sender("twilio", {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_FROM_NUMBER": FROM})
    with pytest.raises(ValueError, match="unknown"):
        build_sender("nexmo", {})


def test_twilio_find_sent_reads_the_message_list(
    twilio: TwilioSender, fake: FakeProviderServer
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)
    sent = twilio.send(TO, BODY)
    twilio.send(TO, "another text")
    twilio.send("+15005550009", BODY)

    assert twilio.find_sent(TO, BODY, before) == sent.provider_message_id
    assert twilio.find_sent(TO, "never sent", before) is None
    assert twilio.find_sent("+15005550010", BODY, before) is None
    assert twilio.find_sent(TO, BODY, datetime.now(UTC) + timedelta(minutes=1)) is None
    # A sid already recorded for another message is never taken for this one.
    assert twilio.find_sent(TO, BODY, before, skip={sent.provider_message_id}) is None


def test_twilio_find_sent_says_when_twilio_cannot_be_asked() -> None:
    sender = TwilioSender(ACCOUNT_SID, AUTH_TOKEN, FROM, api_base_url="http://127.0.0.1:9")
    with pytest.raises(SendError) as refused:
        sender.find_sent(TO, BODY, datetime.now(UTC))
    assert not refused.value.permanent


def test_the_fake_can_refuse_every_send_until_reset(
    twilio: TwilioSender, at: AfricasTalkingSender, fake: FakeProviderServer
) -> None:
    requests.post(
        fake.url + "/_fake/script",
        json={"provider": "africastalking", "refuse": {"code": 406}},
        timeout=5,
    ).raise_for_status()
    fake.refuse_every_send("twilio", 500)
    for _ in range(2):
        with pytest.raises(SendError) as blacklisted:
            at.send(TO, BODY)
        assert blacklisted.value.permanent and blacklisted.value.code == "406"
        with pytest.raises(SendError) as failing:
            twilio.send(TO2, BODY)
        assert not failing.value.permanent
    fake.refuse_every_send("africastalking", 500)  # no code: the whole request fails
    with pytest.raises(SendError) as http_error:
        at.send(TO, BODY)
    assert not http_error.value.permanent
    assert fake.messages() == []
    fake.reset()
    at.send(TO, BODY)
    twilio.send(TO2, BODY)
    assert len(fake.messages()) == 2


def test_twilio_reads_the_environment_once_and_still_goes_through_its_proxy(
    fake: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests reads every environment variable for each request's proxies (0.7 ms a send);
    the sender reads them when it is built, and a proxy they name is still used."""
    monkeypatch.setenv("HTTP_PROXY", fake.url)  # the fake answers as the proxy would relay
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    sender = TwilioSender(
        ACCOUNT_SID, AUTH_TOKEN, FROM, api_base_url="http://twilio.invalid", timeout=5
    )
    looked: list[str] = []
    real = requests.sessions.get_environ_proxies

    def counted(url: str, no_proxy: str | None = None) -> dict[str, str]:
        looked.append(url)
        return real(url, no_proxy=no_proxy)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counted)
    for _ in range(3):
        sender.send(TO, BODY)
    assert [m["to"] for m in fake.messages("twilio")] == [TO] * 3  # through the proxy
    assert looked == []
