"""``/metrics``: a walk over the real Twilio webhook and a real RQ worker sending its alert through
the real twilio SDK to the fake provider, read back in Prometheus's own text format."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from providers.fake_provider import FakeProviderServer
from ruta import metrics
from ruta.config import ConfigError, from_environment
from tests.conftest import PERSON, TwilioPhone, kill, spawn_worker, wait_for
from tests.gateway.test_ussd import AtHandset
from tests.test_referrals import UPALA_1, UPALA_2, ask_for_help, ask_help_answers, sent_to

TOKEN = "metrics-token-for-the-tests-0123456789"
HIGH_QUEUE = "ruta-test-high"
#: Every sample of a scrape by (name, its labels as sorted ``key=value`` pairs).
Samples = dict[tuple[str, tuple[str, ...]], float]


def fetch(client: Any) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/plain"
    return str(response.get_data(as_text=True))


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(f"{k}={v}" for k, v in sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture()
def scrape(app: Flask, client: Any) -> Callable[[], Samples]:
    """Scrape ``/metrics`` as Prometheus would, with the token."""
    app.config["RUTA_METRICS_TOKEN"] = TOKEN
    return lambda: parse(fetch(client))


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(f"{k}={v}" for k, v in sorted(labels.items()))), 0.0)


def rise(
    before: Samples,
    after: Samples,
    name: str,
    **labels: str,
) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_metrics_count_a_walk_and_its_alert(
    scrape: Callable[[], Samples],
    client: Any,
    phone: TwilioPhone,
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
) -> None:
    before = scrape()
    reference = ask_for_help(phone)
    walked = scrape()
    steps = len(ask_help_answers())

    inbound = "ruta_inbound_messages_total"
    assert rise(before, walked, inbound, channel="twilio", outcome="handled") == steps
    # Every step answered inside the webhook (TwiML) counts as an outbound reply.
    outbound = "ruta_outbound_messages_total"
    assert rise(before, walked, outbound, channel="twilio", outcome="inline") == steps
    latency = "ruta_step_latency_seconds_count"
    assert rise(before, walked, latency, channel="twilio") == steps
    assert value(walked, "ruta_step_latency_seconds_bucket", channel="twilio", le="+Inf") == value(
        walked, latency, channel="twilio"
    )
    # The case's forward waits in the outbox and its job in the high queue until a worker runs.
    assert value(walked, "ruta_outbox_pending_events") == 1
    assert value(walked, "ruta_outbox_oldest_event_age_seconds") >= 0
    assert value(walked, "ruta_queue_depth", queue=HIGH_QUEUE) >= 1
    handoff = "ruta_alert_handoff_latency_seconds_count"
    assert value(walked, handoff) == value(before, handoff)

    worker()
    assert len(sent_to(fake_provider, UPALA_1)) == 1
    after = scrape()
    assert rise(walked, after, outbound, channel="twilio", outcome="sent") == 1
    assert rise(walked, after, handoff) == 1
    assert value(after, "ruta_alert_handoff_latency_seconds_bucket", le="+Inf") == value(
        after, handoff
    )
    assert value(after, "ruta_outbox_pending_events") == 0
    assert value(after, "ruta_queue_depth", queue=HIGH_QUEUE) == 0
    assert value(after, "ruta_database_up") == 1 and value(after, "ruta_redis_up") == 1

    text = fetch(client)
    for secret in (PERSON, PERSON.lstrip("+"), UPALA_1.lstrip("+"), reference):
        assert secret not in text


def test_provider_errors_are_counted_by_channel_and_kind(
    scrape: Callable[[], Samples],
    phone: TwilioPhone,
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
) -> None:
    fake_provider.fail_number("twilio", UPALA_1, 21610)
    before = scrape()
    ask_for_help(phone)
    worker()
    assert len(sent_to(fake_provider, UPALA_2)) == 1
    after = scrape()
    errors = "ruta_provider_errors_total"
    assert rise(before, after, errors, channel="twilio", outcome="permanent") == 1
    outbound = "ruta_outbound_messages_total"
    assert rise(before, after, outbound, channel="twilio", outcome="failed") == 1
    # The backup's alert went out and its hand-off was observed; the refused one was not.
    assert rise(before, after, "ruta_alert_handoff_latency_seconds_count") == 1


def test_an_alert_sent_by_a_ruta_worker_process_shows_in_the_web_scrape(
    app: Flask,
    scrape: Callable[[], Samples],
    phone: TwilioPhone,
    fake_provider: FakeProviderServer,
) -> None:
    """Web processes and workers are separate processes (often machines): what a `ruta worker`
    counts is in what any web process serves."""
    before = scrape()
    ask_for_help(phone)
    process = spawn_worker(app)
    try:
        wait_for(lambda: bool(sent_to(fake_provider, UPALA_1)), 30)
        wait_for(lambda: value(scrape(), "ruta_alert_handoff_latency_seconds_count") > 0, 10)
    finally:
        kill(process)
    after = scrape()
    assert len(sent_to(fake_provider, UPALA_1)) == 1
    assert (
        rise(before, after, "ruta_outbound_messages_total", channel="twilio", outcome="sent") == 1
    )
    assert value(after, "ruta_alert_handoff_latency_seconds_count") == 1


def test_duplicates_and_ussd_requests_are_counted_apart(
    scrape: Callable[[], Samples], phone: TwilioPhone, client: Any
) -> None:
    before = scrape()
    params = phone.params("HOLA")
    for _ in range(2):  # Twilio redelivers the same MessageSid
        assert phone.post(params).status_code == 200
    handset = AtHandset(client)
    handset.dial()
    handset.press("1")
    after = scrape()
    inbound = "ruta_inbound_messages_total"
    for channel, outcome, added in (
        ("twilio", "handled", 1),
        ("twilio", "duplicate", 1),
        ("ussd-africastalking", "handled", 2),
    ):
        assert rise(before, after, inbound, channel=channel, outcome=outcome) == added, (
            channel,
            outcome,
        )
    assert value(after, "ruta_step_latency_seconds_count", channel="ussd-africastalking") == 2


def test_an_unauthenticated_or_wrong_scrape_is_refused(app: Flask, client: Any) -> None:
    app.config["RUTA_METRICS_TOKEN"] = TOKEN
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    for header in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", TOKEN, f"Basic {TOKEN}"):
        wrong = client.get("/metrics", headers={"Authorization": header})
        assert wrong.status_code == 403, header
        assert b"ruta_" not in wrong.data


def test_metrics_are_off_without_a_token(app: Flask, client: Any) -> None:
    app.config["RUTA_METRICS_TOKEN"] = None
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


def test_a_short_token_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="RUTA_METRICS_TOKEN"):
        from_environment({"RUTA_METRICS_TOKEN": "metrics"})
    assert from_environment({"RUTA_METRICS_TOKEN": TOKEN})["RUTA_METRICS_TOKEN"] == TOKEN
    assert from_environment({})["RUTA_METRICS_TOKEN"] is None


def test_a_label_of_another_shape_is_recorded_as_other(scrape: Callable[[], Samples]) -> None:
    """Labels stay a short fixed list whatever a caller passes, and recording never raises."""
    metrics.outcomes("+50688001122 hola", sent=1)
    after = scrape()
    assert value(after, "ruta_outbound_messages_total", channel="other", outcome="sent") == 1
    assert not [key for key in after if any("50688001122" in label for label in key[1])]
