"""Referrals handed over in batches (issue 11): many cases by a few jobs, claims that never
overlap, immediate cases first, and a worker killed mid-batch that sends nothing twice and loses
nothing. Real RQ workers (in process and `ruta worker` processes), the real twilio SDK against
the fake provider, the test database (SQLite or PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from rq import Queue
from rq.registry import FinishedJobRegistry, ScheduledJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import func, select

from flows.services import CaseRequest
from providers.fake_provider import FakeProviderServer
from ruta import cases, contacts, handover, referrals
from ruta import policy as policies
from ruta.db import db
from ruta.jobqueue import hand_over
from ruta.models import Case, Message, MessagePurpose, OutboxEvent, Referral
from tests.conftest import Clock, case_events, kill, spawn_worker, wait_for
from workers.jobs import sweep

PLACES = ("cr-upala", "cr-los-chiles", "hn-san-pedro-sula", "pa-panama")
KINDS = ("health", "documents", "shelter", "safety", "family")
QUEUES = ("ruta-test-high", "ruta-test-default", "ruta-test-low")


def open_cases(count: int, clock: Clock, *, unsafe_every: int = 4) -> list[str]:
    """Commit ``count`` consenting requests, one transaction each as the webhook does, and hand
    each one's work over after its commit; their references, in order."""
    references = []
    for index in range(count):
        with db.transaction() as session:
            contact = contacts.lock_contact(session, f"+5068977{index:04d}", seen_at=clock.now)
            case, work = referrals.open_case(
                session,
                CaseRequest(
                    category=KINDS[index % len(KINDS)],
                    municipality=PLACES[index % len(PLACES)],
                    safe=index % unsafe_every != 0,
                    consent=True,
                    consent_wording="help:v1:consent_focal_points",
                    channel="sms",
                    shared_phone=False,
                    contact_ok=False,
                ),
                contact_id=contact.id,
                now=clock.now,
                policy=policies.load(),
                reference=cases.new_reference(session),
            )
            assert case is not None and work.outbox_ids
            references.append(case.reference)
        hand_over(work)
    return references


def expected_numbers(reference: str, clock: Clock) -> list[str]:
    """Whom the case's first alert must reach, by the per-case rules of ruta.referrals (the
    first position of its chain with an eligible focal point, else the coordinator)."""
    with db.transaction() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        assert case is not None
        found: list[str] = []
        for position in range(len(referrals.chain_positions(session, case)) + 1):
            recipients = referrals.recipients(session, case, position, clock.now)
            if recipients:
                found = sorted(fp.contact.phone for fp in recipients)
                break
        session.rollback()  # ``recipients`` may record events: this is only a question
        return found


def alerts_at_provider(fake: FakeProviderServer) -> Counter[tuple[str, str]]:
    """(reference, number) of every alert the provider received, counted."""
    found: Counter[tuple[str, str]] = Counter()
    for message in fake.messages():
        words = message["body"].split()
        if words[:2] == ["Ruta:", "solicitud"]:
            found[(words[2].rstrip("."), message["to"])] += 1
    return found


def jobs_run(app: Flask) -> Counter[str]:
    """Finished RQ jobs by function name, every queue."""
    connection = app.extensions["ruta.redis"]
    names: Counter[str] = Counter()
    for name in QUEUES:
        queue = Queue(name, connection=connection, serializer=JSONSerializer)
        for job_id in FinishedJobRegistry(queue=queue).get_job_ids():
            job = queue.fetch_job(job_id)
            if job is not None:
                names[job.func_name.rsplit(".", 1)[-1]] += 1
    return names


def scheduled(app: Flask, name: str) -> int:
    connection = app.extensions["ruta.redis"]
    total = 0
    for queue_name in QUEUES:
        queue = Queue(queue_name, connection=connection, serializer=JSONSerializer)
        for job_id in ScheduledJobRegistry(queue=queue).get_job_ids():
            job = queue.fetch_job(job_id)
            total += job is not None and job.func_name.endswith(f".{name}")
    return total


def test_many_cases_are_handed_over_by_a_few_jobs(
    app: Flask, worker: Callable[[], None], fake_provider: FakeProviderServer, clock: Clock
) -> None:
    references = open_cases(60, clock)
    expected = {ref: expected_numbers(ref, clock) for ref in references}
    assert all(expected.values())
    connection = app.extensions["ruta.redis"]
    waiting = [len(Queue(n, connection=connection, serializer=JSONSerializer)) for n in QUEUES]
    assert waiting == [1, 0, 0]  # 60 cases committed, one drain job queued
    worker()
    run = jobs_run(app)
    # No job per case: the drain, and the helper its first whole batch of 50 queued.
    assert run == Counter({"drain_referrals": 2}), run
    # The deadlines of 60 cases in two tiers, claimed at one or two moments: a few scans.
    assert 1 <= scheduled(app, "check_deadlines") <= 4

    received = alerts_at_provider(fake_provider)
    assert received == Counter(
        {(ref, number): 1 for ref, numbers in expected.items() for number in numbers}
    )
    policy = policies.load()
    with db.transaction() as session:
        for ref in references:
            case = session.scalar(select(Case).where(Case.reference == ref))
            assert case is not None and case.status == "forwarded" and not case.overdue
            assert case.deadline_at is not None
            deadline = policy.deadline(case.urgency, case.country, case.category_code)
            assert timedelta(0) <= case.deadline_at - deadline - clock.now < timedelta(minutes=1)
            reached = session.scalars(
                select(Referral.focal_point_id)
                .where(Referral.case_id == case.id)
                .order_by(Referral.id)
            ).all()
            assert case.assigned_focal_point_id == reached[0]
        statuses = session.scalars(
            select(Message.status).where(Message.purpose == MessagePurpose.ALERT.value)
        ).all()
        undispatched = session.scalar(
            select(func.count()).where(OutboxEvent.dispatched_at.is_(None))
        )
    assert set(statuses) == {"sent"} and len(statuses) == sum(received.values())
    assert undispatched == 0
    assert case_events(references[0])[-1] == "forwarded"
    worker()  # run again: nothing is sent twice
    assert alerts_at_provider(fake_provider) == received


def test_immediate_cases_are_claimed_first(app: Flask, clock: Clock) -> None:
    references = open_cases(6, clock, unsafe_every=3)  # the first and fourth are immediate
    with db.transaction() as session:
        batch = handover.claim(
            session, now=clock.now, policy=policies.load(), channel="twilio", limit=2
        )
    assert batch.claimed == 2
    first = {ref for ref in references if referrals_of(ref)}
    assert first == {references[0], references[3]}
    assert {case_by(ref).urgency for ref in first} == {"immediate"}


def referrals_of(reference: str) -> int:
    with db.transaction() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Referral)
                .join(Case, Case.id == Referral.case_id)
                .where(Case.reference == reference)
            )
            or 0
        )


def case_by(reference: str) -> Case:
    with db.transaction() as session:
        found = session.scalar(select(Case).where(Case.reference == reference))
        assert found is not None
        session.expunge(found)
        return found


def test_two_claims_at_once_take_different_events(app: Flask, clock: Clock) -> None:
    """A drain job run twice at the same moment: the second claim never takes what the first
    holds. PostgreSQL skips the locked events; SQLite makes the second wait for the first."""
    references = open_cases(6, clock)
    policy = policies.load()
    first = db.session()
    taken = handover.claim(first, now=clock.now, policy=policy, channel="twilio", limit=3)
    results: list[handover.Batch] = []

    def second() -> None:
        with db.transaction() as session:
            results.append(
                handover.claim(session, now=clock.now, policy=policy, channel="twilio", limit=10)
            )

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(timeout=2)  # PostgreSQL: done at once; SQLite: waiting for the write lock
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert not thread.is_alive()
    (other,) = results
    assert (taken.claimed, other.claimed) == (3, 3)
    mine = {send.message_id for send in taken.sends}
    theirs = {send.message_id for send in other.sends}
    assert len(mine) == len(theirs) == 3 and not mine & theirs
    assert all(referrals_of(ref) == 1 for ref in references)


@pytest.mark.parametrize(
    ("concurrency", "holds", "at_provider", "swept_counts"),
    [
        # one after another: the first two answered at once, the third held, the fourth never
        # sent; the sweeper finds three sent and queues the fourth
        (1, (0, 0, 30), 3, (3, 1, 6)),
        # all four in flight together, every answer held: the sweeper finds all four sent
        (4, (30, 30, 30, 30), 4, (4, 0, 6)),
    ],
)
def test_a_worker_killed_mid_batch_sends_nothing_twice_and_loses_nothing(
    app: Flask,
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    concurrency: int,
    holds: tuple[int, ...],
    at_provider: int,
    swept_counts: tuple[int, int, int],
) -> None:
    """A real `ruta worker` is SIGKILLed while Twilio holds answers to alerts of its first
    batch of four: the provider has alerts the database knows nothing of, and six cases were
    never claimed. The sweeper asks Twilio about the batch's claims and queues the drain again:
    every focal point gets each alert once."""
    monkeypatch.setenv("RUTA_REFERRAL_BATCH", "4")  # the worker process's
    monkeypatch.setenv("RUTA_SEND_CONCURRENCY", str(concurrency))
    app.config["RUTA_REFERRAL_BATCH"] = 4
    references = open_cases(10, clock)
    expected = {ref: expected_numbers(ref, clock) for ref in references}
    for seconds in holds:
        fake_provider.hold("twilio", seconds)
    process = spawn_worker(app)
    try:
        wait_for(lambda: len(fake_provider.messages()) >= at_provider, 60)
        time.sleep(0.5)  # time for a send that should not happen to reach the provider
    finally:
        kill(process)
    assert len(fake_provider.messages()) == at_provider
    with db.transaction() as session:
        statuses = session.scalars(
            select(Message.status).where(Message.purpose == MessagePurpose.ALERT.value)
        ).all()
        pending = session.scalar(select(func.count()).where(OutboxEvent.dispatched_at.is_(None)))
    assert statuses == ["sending"] * 4 and pending == 6  # killed mid-batch, outcomes unwritten

    clock.now += timedelta(minutes=3)
    swept = sweep()
    assert (swept["messages_found_sent"], swept["messages"], swept["events"]) == swept_counts
    worker()
    received = alerts_at_provider(fake_provider)
    assert received == Counter(
        {(ref, number): 1 for ref, numbers in expected.items() for number in numbers}
    )
    with db.transaction() as session:
        statuses = session.scalars(
            select(Message.status).where(Message.purpose == MessagePurpose.ALERT.value)
        ).all()
    assert set(statuses) == {"sent"} and len(statuses) == sum(received.values())
    assert all(case_by(ref).status == "forwarded" for ref in references)
    clock.now += timedelta(minutes=3)
    sweep()
    worker()
    assert alerts_at_provider(fake_provider) == received


@pytest.mark.parametrize("drains", [1, 2])
def test_a_backlog_is_drained_by_two_workers_at_once_each_alert_sent_once(
    app: Flask,
    fake_provider: FakeProviderServer,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    drains: int,
) -> None:
    """A drain that claims a whole batch queues a helper (RUTA_REFERRAL_DRAINS): a second
    `ruta worker` claims other batches meanwhile, so twice the alerts are in flight (each drain
    has 2, the provider taking 0.2 s to answer each); never the same event twice."""
    monkeypatch.setenv("RUTA_REFERRAL_BATCH", "4")  # the worker processes'
    monkeypatch.setenv("RUTA_SEND_CONCURRENCY", "2")
    monkeypatch.setenv("RUTA_REFERRAL_DRAINS", str(drains))
    references = open_cases(24, clock)
    expected = {ref: expected_numbers(ref, clock) for ref in references}
    alerts = sum(len(numbers) for numbers in expected.values())
    fake_provider.script("twilio", [{"http_status": 201, "delay": 0.2}] * alerts)
    processes = [spawn_worker(app), spawn_worker(app)]
    try:
        wait_for(lambda: len(fake_provider.messages()) >= alerts, 60)
        time.sleep(0.5)  # time for a send that should not happen to reach the provider
    finally:
        for process in processes:
            kill(process)
    assert alerts_at_provider(fake_provider) == Counter(
        {(ref, number): 1 for ref, numbers in expected.items() for number in numbers}
    )
    assert fake_provider.most_in_flight("twilio") == 2 * drains
    with db.transaction() as session:
        statuses = session.scalars(
            select(Message.status).where(Message.purpose == MessagePurpose.ALERT.value)
        ).all()
    assert statuses == ["sent"] * alerts


@pytest.mark.parametrize("concurrency", [1, 5])
def test_a_batchs_alerts_are_in_flight_together_each_sent_once(
    app: Flask,
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
    clock: Clock,
    concurrency: int,
) -> None:
    """Each provider call is mostly waiting: up to RUTA_SEND_CONCURRENCY of a batch's alerts
    are in flight at once (the provider here takes 0.2 s to answer each), every one sent once
    and its outcome recorded."""
    app.config["RUTA_SEND_CONCURRENCY"] = concurrency
    references = open_cases(10, clock)
    expected = {ref: expected_numbers(ref, clock) for ref in references}
    alerts = sum(len(numbers) for numbers in expected.values())
    fake_provider.script("twilio", [{"http_status": 201, "delay": 0.2}] * alerts)
    worker()
    assert alerts_at_provider(fake_provider) == Counter(
        {(ref, number): 1 for ref, numbers in expected.items() for number in numbers}
    )
    assert fake_provider.most_in_flight("twilio") == min(concurrency, alerts)
    with db.transaction() as session:
        statuses = session.scalars(
            select(Message.status).where(Message.purpose == MessagePurpose.ALERT.value)
        ).all()
    assert statuses == ["sent"] * alerts
