"""A send whose outcome Ruta does not know is settled, never repeated blindly: a worker killed
during the provider call, or a provider answering after the client gave up. Twilio is asked
(its message list); Africa's Talking's delivery reports prove a message went out. Real `ruta
worker` processes, the real SDKs, the fake provider holding its answer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from providers.fake_provider import FakeProviderServer
from ruta import handover
from ruta import policy as policies
from ruta.db import db
from tests.admin.test_alert_failures import alert_messages
from tests.conftest import Clock, TwilioPhone, kill, spawn_worker, wait_for
from tests.test_broadcasts import _at_reports
from tests.test_referrals import UPALA_1, _run_scheduled_now, ask_for_help, sent_to
from workers.jobs import sweep

UNREACHABLE = "http://127.0.0.1:9"


def test_worker_killed_during_an_alerts_provider_call_sends_one_alert(
    app: Flask,
    phone: TwilioPhone,
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
    clock: Clock,
) -> None:
    """SIGKILL while Twilio holds its answer: Twilio has the alert, Ruta does not know it. The
    sweeper asks Twilio (and waits while it cannot be asked), records the alert as sent and
    sends nothing again."""
    fake_provider.hold("twilio", 20)
    reference = ask_for_help(phone)
    process = spawn_worker(app)
    try:
        wait_for(lambda: bool(fake_provider.messages()), 30)
        assert len(sent_to(fake_provider, UPALA_1)) == 1  # the provider has it...
    finally:
        kill(process)  # ...and the worker dies before the answer
    (alert,) = alert_messages()
    assert alert.status == "sending"
    clock.now += timedelta(minutes=3)
    app.config["TWILIO_API_BASE_URL"] = UNREACHABLE
    try:
        assert sweep()["messages"] == 0  # Twilio cannot be asked: nothing is sent again
    finally:
        app.config["TWILIO_API_BASE_URL"] = fake_provider.url
    worker()
    assert [m.status for m in alert_messages()] == ["sending"]
    sweep()
    worker()
    (alert,) = alert_messages()
    assert (alert.status, alert.provider_message_id) == ("sent", fake_provider.messages()[0]["id"])
    clock.now += timedelta(minutes=3)
    sweep()
    worker()
    alerts = sent_to(fake_provider, UPALA_1)
    assert len(alerts) == 1 and reference in alerts[0]


def test_a_provider_answering_after_the_timeout_gets_one_alert(
    app: Flask,
    phone: TwilioPhone,
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
    clock: Clock,
) -> None:
    """Twilio takes the alert and answers after the client's timeout. The outcome is unknown,
    not a failure: no retry goes out; the sweeper finds it in Twilio's list."""
    app.config["RUTA_PROVIDER_TIMEOUT"] = 0.5
    fake_provider.hold("twilio", 2)
    reference = ask_for_help(phone)
    worker()
    _run_scheduled_now(app)  # a retry's backoff would have passed
    worker()
    app.config["RUTA_PROVIDER_TIMEOUT"] = 10  # Twilio answers its message list in time
    clock.now += timedelta(minutes=3)
    sweep()
    worker()
    alerts = sent_to(fake_provider, UPALA_1)
    assert len(alerts) == 1 and reference in alerts[0]
    (alert,) = alert_messages()
    assert (alert.status, alert.provider_message_id) == ("sent", fake_provider.messages()[0]["id"])
    assert alert.attempts == 1


def test_a_claim_twilio_never_received_is_sent_once(
    app: Flask,
    phone: TwilioPhone,
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
    clock: Clock,
) -> None:
    """A worker claimed the alert and died before calling Twilio: Twilio has nothing, so the
    sweeper sends it again, once."""
    ask_for_help(phone)
    with db.transaction() as session:  # a drain's batch, committed; its worker dies here
        batch = handover.claim(
            session, now=clock.now, policy=policies.load(), channel="twilio", limit=50
        )
    assert batch.claimed == 1 and [m.status for m in alert_messages()] == ["sending"]
    clock.now += timedelta(minutes=3)
    swept = sweep()
    assert (swept["messages"], swept["messages_found_sent"]) == (1, 0)
    worker()
    assert len(sent_to(fake_provider, UPALA_1)) == 1
    assert [m.status for m in alert_messages()] == ["sent"]


def test_africastalking_worker_killed_mid_call_settles_on_the_delivery_report(
    app: Flask,
    client: Any,
    phone: TwilioPhone,
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Africa's Talking cannot be asked; its delivery report of the alert in flight proves it
    went out, so the sweeper does not send it again."""
    app.config["RUTA_OUTBOUND_PROVIDER"] = "africastalking"
    monkeypatch.setenv("RUTA_OUTBOUND_PROVIDER", "africastalking")  # the worker process's
    fake_provider.hold("africastalking", 20)
    ask_for_help(phone)
    process = spawn_worker(app)
    try:
        wait_for(lambda: bool(fake_provider.messages()), 30)
    finally:
        kill(process)
    in_flight = fake_provider.messages("africastalking")
    assert [m["to"] for m in in_flight] == [UPALA_1]
    assert [m.status for m in alert_messages()] == ["sending"]
    _at_reports(client, in_flight, "Success")
    (alert,) = alert_messages()
    assert (alert.status, alert.provider_message_id) == ("delivered", in_flight[0]["id"])
    clock.now += timedelta(minutes=3)
    sweep()
    worker()
    assert len(sent_to(fake_provider, UPALA_1)) == 1
