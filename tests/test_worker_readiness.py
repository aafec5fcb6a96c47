"""A worker without its outbound provider's settings: one clear log line and a readiness failure,
no traceback per try, nothing sent, failed or lost; the same work goes out once it is configured."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask
from rq import Queue
from rq.registry import FinishedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import select

from providers.fake_provider import FakeProviderServer
from ruta.db import db
from ruta.jobqueue import hand_over
from ruta.models import Message, MessagePurpose, OutboxEvent
from ruta.referrals import Work
from tests.admin.conftest import open_forwarded_case
from tests.conftest import (
    TwilioPhone,
    case_by_reference,
    kill,
    spawn_worker,
    wait_for,
    worker_env,
)
from tests.test_referrals import UPALA_1, Clock, ask_for_help, sent_to
from workers.jobs import sweep

#: What a deployment that forgot its provider has: no Twilio, no Africa's Talking credentials.
PROVIDER_SETTINGS = (
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER",
    "AT_USERNAME",
    "AT_API_KEY",
)


def check(app: Flask, unset: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", "worker", "--check"],
        env=worker_env(app, unset),
        capture_output=True,
        text=True,
        timeout=60,
    )


def finished_jobs(app: Flask) -> int:
    queue = Queue(
        "ruta-test-high", connection=app.extensions["ruta.redis"], serializer=JSONSerializer
    )
    return len(FinishedJobRegistry(queue=queue).get_job_ids())


def alerts() -> list[tuple[str, int]]:
    with db.transaction() as session:
        return [
            (status, attempts)
            for status, attempts in session.execute(
                select(Message.status, Message.attempts)
                .where(Message.purpose == MessagePurpose.ALERT.value)
                .order_by(Message.id)
            )
        ]


def test_a_missing_provider_configuration_is_one_line_and_nothing_is_lost(
    app: Flask,
    phone: TwilioPhone,
    fake_provider: FakeProviderServer,
    tmp_path: Path,
) -> None:
    app.extensions["ruta.clock"] = clock = Clock(datetime.now(UTC))
    # An alert already recorded and handed to RQ, and a new request whose forward event is.
    _, earlier = open_forwarded_case("cr-upala", "+50688007788")
    with db.transaction() as session:
        queued = list(session.scalars(select(Message.id).where(Message.status == "queued")))
    hand_over(Work(message_ids=queued))
    reference = ask_for_help(phone)

    refused = check(app, PROVIDER_SETTINGS)
    assert refused.returncode != 0
    assert "AT_USERNAME, AT_API_KEY" in refused.stdout + refused.stderr

    log = tmp_path / "worker.log"
    process = spawn_worker(app, unset=PROVIDER_SETTINGS, output=log)
    try:
        wait_for(lambda: finished_jobs(app) == 2, 60)  # the send and the forward, taken
        assert finished_jobs(app) == 2
    finally:
        kill(process)
    text = log.read_text()
    named = [line for line in text.splitlines() if "AT_USERNAME, AT_API_KEY" in line]
    assert len(named) == 1, text
    assert "Traceback" not in text and "ValueError" not in text, text
    assert fake_provider.messages() == []
    assert alerts() == [("queued", 0)]  # not attempted, not failed
    assert case_by_reference(reference).status == "new"  # not forwarded to nobody
    assert case_by_reference(earlier).status == "forwarded"

    assert check(app).returncode == 0
    clock.now += timedelta(minutes=3)
    handed = sweep()  # what no job carries any more is handed over again
    assert handed["messages"] == 1 and handed["events"] == 1
    process = spawn_worker(app)
    try:
        wait_for(lambda: len(sent_to(fake_provider, UPALA_1)) == 2, 60)
    finally:
        kill(process)
    bodies = sent_to(fake_provider, UPALA_1)
    assert len(bodies) == 2 and any(reference in b for b in bodies)
    assert any(earlier in b for b in bodies)
    assert case_by_reference(reference).status == "forwarded"
    with db.transaction() as session:
        assert None not in session.scalars(select(OutboxEvent.dispatched_at)).all()
