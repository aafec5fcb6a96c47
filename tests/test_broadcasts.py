"""Broadcasts end to end: the ledger, opt-outs (also mid-broadcast), quiet hours, cancel, a
worker killed mid-batch, the rate limit across two worker processes, and Africa's Talking
batches of many recipients per call through the real SDK to the fake provider."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from rq import Queue
from rq.registry import FinishedJobRegistry, ScheduledJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import select

from providers.fake_provider import FakeProviderServer
from ruta import broadcasts, contacts, rate_limit
from ruta import policy as policies
from ruta.db import db
from ruta.models import (
    Broadcast,
    BroadcastRecipient,
    Case,
    Municipality,
    Subscription,
)
from tests.conftest import Clock, kill, spawn_worker, wait_for
from workers import broadcast_jobs
from workers.broadcast_jobs import resume_broadcasts, send_batch, start_broadcast

ES = "Ruta: la unidad movil visita Upala el jueves de 8 a 14."
EN = "Ruta: the mobile unit visits Upala on Thursday, 8 to 14."
#: As received: each ends with how to stop, in its own language.
SENT_ES = ES + "\nPara no recibir mas: BAJA"
SENT_EN = EN + "\nTo receive no more: STOP"
#: 12:00 in Costa Rica (UTC-6, no daylight saving time).
CR_NOON = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)


def numbers(count: int, start: int = 0, prefix: str = "+5068833") -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(start, start + count)]


def place_id(code: str = "cr-upala") -> int:
    with db.transaction() as session:
        found = session.scalar(select(Municipality.id).where(Municipality.code == code))
        assert found is not None
        return found


def subscribe(
    phones: list[str], *, language: str = "es", topic: str = "general", place: str = "cr-upala"
) -> list[int]:
    municipality = place_id(place)
    ids = []
    with db.transaction() as session:
        for number in phones:
            person = contacts.lock_contact(session, number, seen_at=datetime.now(UTC))
            session.add(
                Subscription(
                    contact_id=person.id,
                    municipality_id=municipality,
                    topic=topic,
                    language=language,
                )
            )
            ids.append(person.id)
    return ids


def create_broadcast(**fields: Any) -> int:
    values: dict[str, Any] = {
        "title": "Unidad movil",
        "municipality_id": place_id(),
        "topic": "general",
        "texts": {"es": ES, "en": EN},
        "status": "scheduled",
        "created_by": "tests",
        **fields,
    }
    with db.transaction() as session:
        broadcast = Broadcast(**values)
        session.add(broadcast)
        session.flush()
        return broadcast.id


def opt_out(number: str) -> None:
    with db.transaction() as session:
        person = contacts.lock_contact(session, number)
        person.opted_out = True
        person.opted_out_at = datetime.now(UTC)


def received(fake: FakeProviderServer, phones: list[str]) -> dict[str, list[str]]:
    wanted = set(phones)
    got: dict[str, list[str]] = {number: [] for number in phones}
    for message in fake.messages():
        if message["to"] in wanted:
            got[message["to"]].append(message["body"])
    return got


def status_of(broadcast_id: int) -> str:
    with db.transaction() as session:
        found = session.get(Broadcast, broadcast_id)
        assert found is not None
        return found.status


def progress(broadcast_id: int) -> dict[str, int]:
    with db.transaction() as session:
        return broadcasts.progress(session, broadcast_id)


@pytest.fixture()
def clock(app: Flask) -> Clock:
    app.extensions["ruta.clock"] = Clock(CR_NOON)
    return app.extensions["ruta.clock"]  # type: ignore[no-any-return]


def test_recipients_one_row_per_contact_without_opt_outs_or_sensitive_cases(
    app: Flask, clock: Clock
) -> None:
    both, english, opted, sensitive, health, elsewhere = numbers(6)
    ids = subscribe([both, opted, sensitive, health])
    subscribe([both], topic="health")  # a second matching subscription: still one row
    subscribe([english], language="en")
    subscribe([elsewhere], place="cr-los-chiles")
    opt_out(opted)
    with db.transaction() as session:
        session.add_all(
            [
                Case(reference="BRS01", contact_id=ids[2], category_code="safety", urgency="u"),
                Case(reference="BRS02", contact_id=ids[3], category_code="health", urgency="u"),
            ]
        )
    policy = policies.load()
    any_topic_id, spanish_id = create_broadcast(topic=None), create_broadcast(language="es")
    english_id = _id(english)
    with db.transaction() as session:

        def audience(broadcast_id: int, pause: bool = True) -> dict[int, str]:
            broadcast = session.get(Broadcast, broadcast_id)
            assert broadcast is not None
            query = broadcasts.recipients_query(session, broadcast, policy, pause)
            return {int(c): str(lang) for c, lang in session.execute(query)}

        by_contact = audience(any_topic_id)
        assert sorted(by_contact) == sorted([ids[0], ids[3], english_id])
        assert by_contact[english_id] == "en"
        assert ids[2] in audience(any_topic_id, pause=False)  # the setting is off
        assert english_id not in audience(spanish_id)


def _id(number: str) -> int:
    with db.transaction() as session:
        return contacts.lock_contact(session, number).id


def test_every_subscriber_gets_one_message_in_their_language(
    app: Flask, worker: Callable[[], None], fake_provider: FakeProviderServer, clock: Clock
) -> None:
    spanish, english = numbers(3), numbers(2, start=100)
    subscribe(spanish)
    subscribe(english, language="en")
    subscribe(numbers(1, start=200), language="fr")  # no French text: gets the Spanish one
    broadcast_id = create_broadcast()
    app.config["RUTA_BROADCAST_BATCH"] = 2
    start_broadcast(broadcast_id)
    worker()
    got = received(fake_provider, spanish + english + numbers(1, start=200))
    assert all(got[n] == [SENT_ES] for n in [*spanish, *numbers(1, start=200)])
    assert all(got[n] == [SENT_EN] for n in english)
    assert status_of(broadcast_id) == "done"
    counts = progress(broadcast_id)
    assert counts["sent"] == 6 and counts["total"] == 6
    with db.transaction() as session:
        ids = set(session.scalars(select(BroadcastRecipient.provider_message_id)))
    assert ids == {m["id"] for m in fake_provider.messages()}
    start_broadcast(broadcast_id)  # a second start (or worker run) sends nothing again
    resume_broadcasts()
    worker()
    assert len(fake_provider.messages()) == 6


def test_opt_outs_never_receive_also_mid_broadcast(
    app: Flask, worker: Callable[[], None], fake_provider: FakeProviderServer, clock: Clock
) -> None:
    phones = numbers(6)
    subscribe(phones)
    opt_out(phones[5])  # before: never in the ledger
    broadcast_id = create_broadcast()
    app.config["RUTA_BROADCAST_BATCH"] = 2
    start_broadcast(broadcast_id)
    assert progress(broadcast_id)["total"] == 5
    send_batch(broadcast_id)  # the first batch goes out...
    assert len(fake_provider.messages()) == 2
    opt_out(phones[3])  # ...then a person texts STOP
    worker()
    got = received(fake_provider, phones)
    assert got[phones[3]] == [] and got[phones[5]] == []
    assert all(got[n] == [SENT_ES] for n in phones[:3] + phones[4:5])
    counts = progress(broadcast_id)
    assert counts["sent"] == 4 and counts["skipped"] == 1
    assert status_of(broadcast_id) == "done"


def test_cancel_stops_the_rest(
    app: Flask, worker: Callable[[], None], fake_provider: FakeProviderServer, clock: Clock
) -> None:
    phones = numbers(6)
    subscribe(phones)
    broadcast_id = create_broadcast()
    app.config["RUTA_BROADCAST_BATCH"] = 2
    start_broadcast(broadcast_id)
    send_batch(broadcast_id)
    with db.transaction() as session:
        assert broadcasts.cancel(session, broadcast_id, clock.now) == 4
    worker()
    assert len(fake_provider.messages()) == 2
    counts = progress(broadcast_id)
    assert counts["sent"] == 2 and counts["skipped"] == 4 and counts["pending"] == 0
    assert status_of(broadcast_id) == "cancelled"
    clock.now += timedelta(minutes=5)
    assert resume_broadcasts()["broadcast_batches"] == 0
    worker()
    assert len(fake_provider.messages()) == 2


def _scheduled(app: Flask) -> list[tuple[str, list[Any], datetime]]:
    queue = Queue(
        "ruta-test-low", connection=app.extensions["ruta.redis"], serializer=JSONSerializer
    )
    registry = ScheduledJobRegistry(queue=queue)
    found = []
    for job_id in registry.get_job_ids():
        job = queue.fetch_job(job_id)
        assert job is not None
        when = registry.get_scheduled_time(job_id)
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        found.append((job.func_name.rsplit(".", 1)[-1], list(job.args), when))
    return found


def _release_scheduled(app: Flask) -> None:
    queue = Queue(
        "ruta-test-low", connection=app.extensions["ruta.redis"], serializer=JSONSerializer
    )
    registry = ScheduledJobRegistry(queue=queue)
    for job_id in registry.get_job_ids():
        job = queue.fetch_job(job_id)
        assert job is not None
        registry.remove(job_id)
        queue.enqueue_job(job)


def test_two_claims_never_share_a_row(app: Flask, clock: Clock) -> None:
    subscribe(numbers(5))
    broadcast_id = create_broadcast()
    with db.transaction() as session:
        assert broadcasts.start(session, broadcast_id, clock.now) == 5
    first = db.session()
    try:
        mine = {row.id for row in broadcasts.claim_batch(first, broadcast_id, 3, clock.now)}
        assert len(mine) == 3
        assert db.engine is not None
        if db.engine.dialect.name == "postgresql":  # SQLite would wait for the first to end
            with db.transaction() as second:
                theirs = {r.id for r in broadcasts.claim_batch(second, broadcast_id, 3)}
            assert len(theirs) == 2 and not mine & theirs  # the locked rows were skipped
        first.commit()
    finally:
        first.close()
    with db.transaction() as session:
        rest = broadcasts.claim_batch(session, broadcast_id, 3)
        assert not {row.id for row in rest} & mine
        assert broadcasts.start(session, broadcast_id, clock.now) == 5  # idempotent
    assert progress(broadcast_id)["sending"] == 5


def test_quiet_hours_delay_until_the_morning(
    app: Flask, worker: Callable[[], None], fake_provider: FakeProviderServer, clock: Clock
) -> None:
    phones = numbers(3)
    subscribe(phones)
    clock.now = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)  # 23:00 in Costa Rica
    broadcast_id = create_broadcast()
    urgent_id = create_broadcast(urgent=True, title="Urgente")
    for broadcast in (broadcast_id, urgent_id):
        broadcast_jobs._enqueue_start(broadcast)
    worker()
    assert len(fake_provider.messages()) == 3  # only the urgent one goes out at night
    assert status_of(urgent_id) == "done" and status_of(broadcast_id) == "scheduled"
    morning = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)  # 07:00 in Costa Rica
    assert _scheduled(app) == [("start_broadcast", [broadcast_id], morning)]
    clock.now = datetime(2026, 11, 25, 12, 59, tzinfo=UTC)
    _release_scheduled(app)  # too early (06:59): it waits again
    worker()
    assert len(fake_provider.messages()) == 3
    assert _scheduled(app) == [("start_broadcast", [broadcast_id], morning)]
    clock.now = morning
    _release_scheduled(app)
    worker()
    assert len(fake_provider.messages()) == 6
    assert status_of(broadcast_id) == "done"


def test_quiet_until() -> None:
    policy = policies.load()
    at = lambda h, m=0: datetime(2026, 11, 25, h, m, tzinfo=UTC)  # noqa: E731
    assert broadcasts.quiet_until(policy, "CR", at(18)) is None  # 12:00
    assert broadcasts.quiet_until(policy, "CR", at(1, 59)) is None  # 19:59
    assert broadcasts.quiet_until(policy, "CR", at(2)) == at(13)  # 20:00 the day before
    assert broadcasts.quiet_until(policy, "CR", at(12, 59)) == at(13)  # 06:59
    assert broadcasts.quiet_until(policy, "MX", at(12, 59)) == at(13)  # CST, UTC-6 too
    assert broadcasts.quiet_until(policy, "PA", at(12, 59)) is None  # 07:59 in Panama (UTC-5)
    assert broadcasts.quiet_until(policy, "PA", at(11, 59)) == at(12)
    assert policies.check({**policy.raw, "timezones": {"CR": "Mars/Olympus"}}) == [
        "timezones.CR: 'Mars/Olympus' is not a time zone"
    ]


def test_a_scheduled_time_is_respected(
    app: Flask, worker: Callable[[], None], fake_provider: FakeProviderServer, clock: Clock
) -> None:
    subscribe(numbers(2))
    later = CR_NOON + timedelta(hours=2)
    broadcast_id = create_broadcast(scheduled_at=later)
    assert start_broadcast(broadcast_id) == "delayed"
    assert _scheduled(app) == [("start_broadcast", [broadcast_id], later)]
    clock.now = later
    _release_scheduled(app)
    worker()
    assert len(fake_provider.messages()) == 2


def test_africastalking_sends_many_recipients_per_call(
    app: Flask, worker: Callable[[], None], fake_provider: FakeProviderServer, clock: Clock
) -> None:
    spanish, english = numbers(7), numbers(3, start=100)
    subscribe(spanish)
    subscribe(english, language="en")
    fake_provider.fail_number("africastalking", spanish[2], 406)  # blacklisted: permanent
    broadcast_id = create_broadcast(channel="africastalking")
    calls_before = broadcast_jobs.bulk_sender().calls
    start_broadcast(broadcast_id)
    worker()
    sent = fake_provider.messages("africastalking")
    assert len(sent) == 9 and fake_provider.messages("twilio") == []
    assert broadcast_jobs.bulk_sender().calls - calls_before == 2  # one call per language
    got = received(fake_provider, spanish + english)
    assert all(got[n] == [SENT_ES] for n in spanish if n != spanish[2])
    assert all(got[n] == [SENT_EN] for n in english)
    with db.transaction() as session:
        failed = session.execute(
            select(BroadcastRecipient.status, BroadcastRecipient.error_code).where(
                BroadcastRecipient.contact_id == contacts.lock_contact(session, spanish[2]).id
            )
        ).one()
    assert tuple(failed) == ("failed", "406")
    counts = progress(broadcast_id)
    assert counts["sent"] == 9 and counts["failed"] == 1
    assert status_of(broadcast_id) == "done"


def test_africastalking_batches_follow_the_rate(
    app: Flask, worker: Callable[[], None], fake_provider: FakeProviderServer, clock: Clock
) -> None:
    subscribe(numbers(25))
    app.config["RUTA_BROADCAST_RATE"] = 10.0  # at most 10 recipients in one call
    broadcast_id = create_broadcast(channel="africastalking")
    calls_before = broadcast_jobs.bulk_sender().calls
    started = time.monotonic()
    start_broadcast(broadcast_id)
    worker()
    assert len(fake_provider.messages("africastalking")) == 25
    assert broadcast_jobs.bulk_sender().calls - calls_before == 3
    assert time.monotonic() - started >= 1.5  # 10 + 10 + 5 at 10 a second


def test_transient_errors_go_back_to_pending_and_the_job_is_retried(
    app: Flask, worker: Callable[[], None], fake_provider: FakeProviderServer, clock: Clock
) -> None:
    phones = numbers(3)
    subscribe(phones)
    fake_provider.script("africastalking", [500])
    broadcast_id = create_broadcast(channel="africastalking")
    start_broadcast(broadcast_id)
    worker()
    assert fake_provider.messages() == []
    assert progress(broadcast_id)["pending"] == 3
    assert [name for name, _, _ in _scheduled(app)] == ["send_batch"]  # RQ's retry
    _release_scheduled(app)
    worker()
    assert sorted(m["to"] for m in fake_provider.messages()) == phones
    assert status_of(broadcast_id) == "done"


def test_rate_limit_acquire_spaces_sends(app: Flask) -> None:
    redis = app.extensions["ruta.redis"]
    assert rate_limit.acquire(redis, "t:none", 0, 1000) == 0.0
    stamps: list[float] = []

    def take() -> None:
        for _ in range(10):
            rate_limit.acquire(redis, "t:ten", 10, 1)
            stamps.append(time.monotonic())

    threads = [threading.Thread(target=take) for _ in range(2)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started >= 1.8  # 20 sends at 10 a second
    stamps.sort()
    assert all(b - a > 0.05 for a, b in itertools.pairwise(stamps))


def test_worker_killed_mid_batch_resumes_with_no_duplicate_and_no_gap(
    app: Flask, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    """SIGKILL while the provider holds its answer to the batch's 2nd message: the provider has
    it, the ledger does not. The resume asks Twilio, records it as sent and sends the rest:
    everyone gets it exactly once."""
    clock = Clock(datetime.now(UTC))
    app.extensions["ruta.clock"] = clock
    phones = numbers(6)
    subscribe(phones)
    app.config["RUTA_BROADCAST_BATCH"] = 3
    broadcast_id = create_broadcast(urgent=True)  # real time in the worker: maybe quiet hours
    fake_provider.hold("twilio", 0)
    fake_provider.hold("twilio", 20)
    start_broadcast(broadcast_id)
    process = spawn_worker(app)
    try:
        wait_for(lambda: len(fake_provider.messages()) >= 2, 30)
        assert [m["to"] for m in fake_provider.messages()] == phones[:2]
    finally:
        kill(process)  # ...and the worker dies before the answer to the 2nd
    counts = progress(broadcast_id)
    assert counts["sent"] == 1 and counts["sending"] == 2 and counts["pending"] == 3
    assert resume_broadcasts()["broadcast_rows_reset"] == 0  # too early: maybe still working
    clock.now += timedelta(minutes=3)
    resumed = resume_broadcasts()
    assert resumed["broadcast_rows_found_sent"] == 1  # Twilio has the 2nd message
    assert resumed["broadcast_rows_reset"] == 1  # the 3rd was never sent
    worker()
    got = received(fake_provider, phones)
    assert all(got[n] == [SENT_ES] for n in phones)  # no duplicate, no gap
    assert status_of(broadcast_id) == "done"
    assert progress(broadcast_id)["sent"] == 6
    clock.now += timedelta(minutes=3)
    resume_broadcasts()
    worker()
    assert len(fake_provider.messages()) == 6


def test_a_resume_that_cannot_ask_twilio_sends_nothing_again_until_it_can(
    app: Flask, worker: Callable[[], None], fake_provider: FakeProviderServer, clock: Clock
) -> None:
    phones = numbers(3, start=500)
    subscribe(phones)
    broadcast_id = create_broadcast(channel="twilio")
    start_broadcast(broadcast_id)
    with db.transaction() as session:  # a worker claimed the batch and died
        claimed = broadcasts.claim_batch(session, broadcast_id, 10, clock.now)
    assert len(claimed) == 3
    clock.now += timedelta(minutes=3)
    real_url = app.config["TWILIO_API_BASE_URL"]
    app.config["TWILIO_API_BASE_URL"] = "http://127.0.0.1:9"  # Twilio unreachable
    try:
        resumed = resume_broadcasts()
    finally:
        app.config["TWILIO_API_BASE_URL"] = real_url
    assert resumed["broadcast_rows_reset"] == 0
    assert progress(broadcast_id)["sending"] == 3
    resumed = resume_broadcasts()  # Twilio answers: it has none of them
    assert (resumed["broadcast_rows_found_sent"], resumed["broadcast_rows_reset"]) == (0, 3)
    worker()
    assert sorted(m["to"] for m in fake_provider.messages()) == phones


def test_the_rate_limit_holds_with_two_workers(
    app: Flask, fake_provider: FakeProviderServer
) -> None:
    rate, total = 20, 60
    phones = numbers(total)
    subscribe(phones)
    app.config["RUTA_BROADCAST_RATE"] = float(rate)
    app.config["RUTA_BROADCAST_BATCH"] = 10
    broadcast_id = create_broadcast(urgent=True)
    start_broadcast(broadcast_id)
    workers = [spawn_worker(app), spawn_worker(app)]
    try:
        wait_for(lambda: status_of(broadcast_id) == "done", 60)
    finally:
        for process in workers:
            kill(process)
    sent = fake_provider.messages()
    assert sorted(m["to"] for m in sent) == phones
    stamps = sorted(datetime.fromisoformat(m["received_at"]).timestamp() for m in sent)
    # Slots are booked evenly in Redis; arrival times at the provider add some jitter, so
    # windows of two seconds are checked (without the limit all 60 arrive within one second).
    busiest = max(sum(1 for t in stamps if s <= t < s + 2.0) for s in stamps)
    assert busiest <= 2 * rate + 2
    elapsed = stamps[-1] - stamps[0]
    assert elapsed >= total / rate - 1
    assert (total - 1) / elapsed <= rate * 1.1  # the measured rate, over the whole run
    assert status_of(broadcast_id) == "done"
    queue = Queue(
        "ruta-test-low", connection=app.extensions["ruta.redis"], serializer=JSONSerializer
    )
    finished = [
        queue.fetch_job(job_id) for job_id in FinishedJobRegistry(queue=queue).get_job_ids()
    ]
    assert len({job.worker_name for job in finished if job is not None}) == 2  # both worked


def test_delivery_reports_move_the_ledger_forward(
    app: Flask,
    client: Any,
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
    clock: Clock,
) -> None:
    from tests.conftest import AT_TOKEN

    subscribe(numbers(3, start=200))
    broadcast_id = create_broadcast(channel="africastalking")
    start_broadcast(broadcast_id)
    worker()
    sent = fake_provider.messages("africastalking")
    assert len(sent) == 3
    url = f"/webhooks/africastalking/{AT_TOKEN}/delivery"
    reports = [
        {"id": sent[0]["id"], "status": "Success", "phoneNumber": sent[0]["to"]},
        {
            "id": sent[1]["id"],
            "status": "Failed",
            "phoneNumber": sent[1]["to"],
            "failureReason": "UserInBlackList",
        },
        {"id": sent[0]["id"], "status": "Sent", "phoneNumber": sent[0]["to"]},  # late: ignored
    ]
    for report in reports:
        assert client.post(url, data=report).status_code == 204
    counts = progress(broadcast_id)
    assert (counts["delivered"], counts["failed"], counts["sent"]) == (1, 1, 1)


def test_twilio_broadcasts_ask_for_reports_and_reports_move_the_ledger(
    app: Flask,
    client: Any,
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
    clock: Clock,
) -> None:
    from tests.conftest import PUBLIC_BASE_URL, sign

    phones = numbers(3, start=300)
    subscribe(phones)
    broadcast_id = create_broadcast(channel="twilio")
    start_broadcast(broadcast_id)
    worker()
    sent = {m["to"]: m for m in fake_provider.messages("twilio")}
    assert sorted(sent) == phones
    callback = f"{PUBLIC_BASE_URL}/webhooks/twilio/status"
    assert all(m["status_callback"] == callback for m in sent.values())

    def report(number: str, status: str, **extra: str) -> int:
        form = {"MessageSid": sent[number]["id"], "MessageStatus": status, **extra}
        headers = {"X-Twilio-Signature": sign(callback, form)}
        return int(client.post("/webhooks/twilio/status", data=form, headers=headers).status_code)

    assert report(phones[0], "delivered") == 204
    assert report(phones[1], "undelivered", ErrorCode="30003") == 204
    assert report(phones[0], "sent") == 204  # late and out of order: ignored
    counts = progress(broadcast_id)
    assert (counts["delivered"], counts["failed"], counts["sent"]) == (1, 1, 1)
    with db.transaction() as session:
        failed = session.scalar(
            select(BroadcastRecipient.error_code).where(
                BroadcastRecipient.broadcast_id == broadcast_id,
                BroadcastRecipient.status == "failed",
            )
        )
    assert failed == "30003"


def test_a_referral_alert_does_not_wait_for_a_rate_limited_broadcast(
    app: Flask, phone: Any, fake_provider: FakeProviderServer
) -> None:
    """One worker sends a broadcast to 40 people at 10 a second (one batch, 4 s). Someone
    asks for help meanwhile: the batch stops after its current chunk, the worker sends the
    focal point's alert, then the broadcast goes on with no duplicate and no gap."""
    from tests.test_referrals import ask_for_help

    app.extensions["ruta.clock"] = Clock(datetime.now(UTC))  # the worker runs on real time
    phones = numbers(40, start=400)
    subscribe(phones)
    app.config["RUTA_BROADCAST_RATE"] = 10.0
    broadcast_id = create_broadcast(urgent=True, channel="twilio")
    start_broadcast(broadcast_id)
    process = spawn_worker(app)
    try:
        wait_for(lambda: len(fake_provider.messages()) >= 5, 30)
        ask_for_help(phone)
        asked_at = len(fake_provider.messages())
        wait_for(lambda: status_of(broadcast_id) == "done", 60)
        wait_for(lambda: any(m["to"] not in phones for m in fake_provider.messages()), 10)
    finally:
        kill(process)
    recipients = [m["to"] for m in fake_provider.messages()]
    assert sorted(n for n in recipients if n in phones) == phones  # everyone exactly once
    alert = next(i for i, n in enumerate(recipients) if n not in phones)
    last_broadcast = max(i for i, n in enumerate(recipients) if n in phones)
    assert alert < last_broadcast
    # At most the chunk under way when the alert was queued went out before it.
    assert alert - asked_at <= broadcast_jobs.CHECK_EVERY


def _at_reports(client: Any, messages: list[dict[str, Any]], status: str) -> None:
    from tests.conftest import AT_TOKEN

    for message in messages:
        report = {"id": message["id"], "status": status, "phoneNumber": message["to"]}
        response = client.post(f"/webhooks/africastalking/{AT_TOKEN}/delivery", data=report)
        assert response.status_code == 204


def test_africastalking_worker_killed_mid_call_resumes_from_delivery_reports(
    app: Flask, client: Any, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    """SIGKILL while Africa's Talking holds its answer to a call of 3 recipients: the ledger
    has no ids for them. Their delivery reports arrive; the resume then sends only the rest."""
    clock = Clock(datetime.now(UTC))
    app.extensions["ruta.clock"] = clock
    phones = numbers(6, start=600)
    subscribe(phones)
    app.config["RUTA_BROADCAST_BATCH"] = 3
    broadcast_id = create_broadcast(urgent=True, channel="africastalking")
    fake_provider.hold("africastalking", 20)
    start_broadcast(broadcast_id)
    process = spawn_worker(app)
    try:
        wait_for(lambda: len(fake_provider.messages()) >= 3, 30)
    finally:
        kill(process)
    in_flight = fake_provider.messages()
    assert sorted(m["to"] for m in in_flight) == phones[:3]
    assert progress(broadcast_id)["sending"] == 3
    _at_reports(client, in_flight, "Success")
    counts = progress(broadcast_id)
    assert (counts["delivered"], counts["sending"]) == (3, 0)
    clock.now += timedelta(minutes=3)
    resume_broadcasts()
    worker()
    got = received(fake_provider, phones)
    assert all(got[n] == [SENT_ES] for n in phones)  # no duplicate, no gap
    assert status_of(broadcast_id) == "done"


def test_a_report_before_the_worker_records_the_call_is_kept(
    app: Flask, client: Any, fake_provider: FakeProviderServer
) -> None:
    app.extensions["ruta.clock"] = Clock(datetime.now(UTC))
    phones = numbers(3, start=700)
    subscribe(phones)
    broadcast_id = create_broadcast(urgent=True, channel="africastalking")
    fake_provider.hold("africastalking", 2)
    start_broadcast(broadcast_id)
    process = spawn_worker(app)
    try:
        wait_for(lambda: len(fake_provider.messages()) >= 3, 30)
        _at_reports(client, fake_provider.messages(), "Success")  # faster than the answer
        wait_for(lambda: status_of(broadcast_id) == "done", 30)
    finally:
        kill(process)
    counts = progress(broadcast_id)
    assert (counts["delivered"], counts["sent"]) == (3, 0)  # not put back to "sent"
