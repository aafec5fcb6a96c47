"""Jobs: send one message, hand referrals over in batches, escalate cases past their deadline,
sweep for lost work.

Referrals are not a job each: ``hand_over`` makes sure one ``drain_referrals`` job is queued
(coalesced by a Redis flag), and that job claims pending outbox events in batches
(ruta/handover.py), sends their alerts and records the outcomes a statement per chunk, until
none are left. Deadlines are found by an indexed scan (``check_deadlines``), scheduled once per
distinct moment a batch started, and run by the sweeper every minute as well.

Other jobs take ids only and re-load rows; exceptions propagate so RQ's Retry and failed-job
registry work. Each job commits before it hands follow-up work to RQ.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from queue import SimpleQueue
from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import CursorResult, func, select, update

from providers.senders import (
    OutcomeUnknown,
    Sender,
    SendError,
    SendResult,
    TwilioSender,
    build_sender,
    configuration_problem,
    status_callback_url,
)
from ruta import clock, erasure, handover, metrics, referrals, retention
from ruta import policy as policies
from ruta.db import db
from ruta.jobqueue import (
    BATCH_JOB_TIMEOUT,
    DEADLINES,
    DRAIN,
    HIGH,
    SEND_RETRY,
    drain_flag,
    enqueue,
    enqueue_at,
    enqueue_coalesced,
    hand_over,
    hold,
    kick_referrals,
    release,
    schedule_deadlines,
)
from ruta.models import (
    Case,
    CaseStatus,
    Contact,
    Message,
    MessagePurpose,
    MessageStatus,
    OutboxEvent,
    Referral,
)
from ruta.referrals import Work
from workers.broadcast_jobs import resume_broadcasts
from workers.settlement import resume_messages
from workers.spool_jobs import StillUnavailable, drain_spool

log = logging.getLogger(__name__)

#: A message or outbox event left this long without being handed over is handed over again.
SWEEP_AFTER = timedelta(minutes=2)
#: Seconds between two retention purges (DOMAIN.md), whatever the number of workers.
RETENTION_EVERY = 3600
#: Attempts at a message before a transient-looking error counts as final: RQ's retries plus the
#: first try. Without a bound, the sweeper would hand a refused alert over for ever and its case
#: would never move on.
MAX_SEND_ATTEMPTS = (SEND_RETRY.max or 0) + 1
#: Messages a person or focal point may receive although they opted out.
ALWAYS_SENT = (MessagePurpose.OPT_OUT_CONFIRMATION.value,)
#: Alerts sent between two writes of their outcomes (one statement each): a worker killed
#: mid-batch leaves at most this many sends whose outcome the sweeper asks the provider about
#: (besides those in flight, RUTA_SEND_CONCURRENCY), and a delivery report soon finds its
#: message's provider id recorded.
OUTCOMES_EVERY = 10
#: A drain job claims no further batch after this long; it queues its successor, so other jobs
#: of the queue get their turn and no job nears its timeout.
DRAIN_SECONDS = 5.0
#: A drain that found fewer events than a batch waits this long before it claims again, so
#: cases committed one by one are handed over a few at a time (at most this much later)...
GATHER = 0.1
#: ...and stops once it has found nothing for this long.
LINGER = 0.25
#: No send of a batch starts later than this after its claim: claims older than SWEEP_AFTER
#: are the sweeper's to settle, so a send must have had its answer (RUTA_PROVIDER_TIMEOUT)
#: well before. What is left is put back to queued and sent by its own job.
SEND_WINDOW = 30.0
#: Cases one transaction of the deadline scan escalates.
DEADLINE_BATCH = 100


def _policy() -> policies.Policy:
    return policies.load(current_app.config.get("RUTA_POLICY_FILE"))


def send_message(message_id: int) -> str:
    """Hand one outbound message to its provider.

    The row is claimed (queued -> sending) in its own transaction before the provider call, so a
    second run of this job sends nothing twice. Transient provider errors are raised again so
    RQ's Retry runs; permanent ones mark the message failed (and move a referral on). No answer
    in time is neither: the provider may have the message, so it stays claimed and the sweeper
    settles it (workers/settlement.py) rather than a retry sending it twice.
    """
    with db.transaction() as session:
        channel = session.scalar(select(Message.channel).where(Message.id == message_id))
        if channel is None or configuration_problem(channel, current_app.config):
            # Not attempted, not failed: the sweeper hands it over again until the worker has
            # the provider's settings (the worker said which are missing when it started).
            return "not configured" if channel else "no such message"
        claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(Message)
            .where(Message.id == message_id, Message.status == MessageStatus.QUEUED.value)
            .values(
                status=MessageStatus.SENDING.value,
                attempts=Message.attempts + 1,
                claimed_at=clock.now(),
            )
        )
        if not claimed.rowcount:
            return "not queued"
        message = session.get(Message, message_id)
        assert message is not None
        contact = session.get(Contact, message.contact_id)
        if contact is None or (contact.opted_out and message.purpose not in ALWAYS_SENT):
            message.status = MessageStatus.SUPPRESSED.value
            opted_out = True
        else:
            opted_out = False
            to, body, channel = contact.phone, message.body or "", message.channel
    if opted_out:
        metrics.outcomes(channel, suppressed=1)
        _failed_alert(message_id, "opted out")
        return "suppressed"
    try:
        result = _sender(channel).send(
            to, body, status_callback=status_callback_url(current_app.config, channel)
        )
    except OutcomeUnknown as exc:
        with db.transaction() as session:
            session.execute(
                update(Message)
                .where(Message.id == message_id, Message.status == MessageStatus.SENDING.value)
                .values(error_code=exc.code)
            )
        log.warning("send outcome unknown, left for the sweeper: message=%s", message_id)
        return "unknown"
    except SendError as exc:
        with db.transaction() as session:
            message = session.get(Message, message_id)
            assert message is not None
            message.error_code = exc.code
            final = exc.permanent or message.attempts >= MAX_SEND_ATTEMPTS
            message.status = (MessageStatus.FAILED if final else MessageStatus.QUEUED).value
            attempts = message.attempts
        metrics.outcomes(
            channel,
            failed=final,
            retried=not final,
            permanent_errors=exc.permanent,
            transient_errors=not exc.permanent,
        )
        log.warning(
            "send failed: message=%s code=%s permanent=%s attempt=%s",
            message_id,
            exc.code,
            exc.permanent,
            attempts,
        )
        if exc.permanent:
            _failed_alert(message_id, f"provider error {exc.code}")
            return "failed"
        if final:
            _failed_alert(message_id, f"provider error {exc.code} after {attempts} attempts")
            return "failed"
        raise
    with db.transaction() as session:
        # Only a message still claimed: a delivery report may have got there first.
        session.execute(
            update(Message)
            .where(Message.id == message_id, Message.status == MessageStatus.SENDING.value)
            .values(
                status=MessageStatus.SENT.value,
                provider_message_id=result.provider_message_id,
                error_code=None,
            )
        )
        message = session.get(Message, message_id)
        assert message is not None
        raised_at = _alert_raised_at(session, message)
    metrics.outcomes(channel, sent=1, alert_raised_at=raised_at, now=clock.now())
    return "sent"


def _alert_raised_at(session: Any, message: Message) -> datetime | None:
    """When the referral event behind an alert was committed: where its hand-off starts."""
    if message.purpose != MessagePurpose.ALERT.value:
        return None
    return session.scalar(
        select(OutboxEvent.created_at)
        .join(Referral, Referral.event_id == OutboxEvent.id)
        .where(Referral.message_id == message.id)
    )


#: Provider clients by (channel, their settings): built once per worker process, not per message.
_SENDERS: dict[tuple[str, ...], Sender] = {}
_SENDER_SETTINGS = (
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER",
    "TWILIO_API_BASE_URL",
    "AT_USERNAME",
    "AT_API_KEY",
    "AT_SENDER_ID",
    "AT_API_BASE_URL",
    "RUTA_PROVIDER_TIMEOUT",
)


def _twilio() -> TwilioSender:
    sender = _sender("twilio")
    assert isinstance(sender, TwilioSender)
    return sender


def _sender(channel: str) -> Sender:
    config = current_app.config
    key = (channel, *(str(config.get(name)) for name in _SENDER_SETTINGS))
    if key not in _SENDERS:
        _SENDERS[key] = build_sender(channel, config)
    return _SENDERS[key]


#: Per process (a forked job has its own): the threads that send a batch's alerts together, and
#: a client each, so no two sends share one SDK client's connection.
_SEND_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}
_SEND_CLIENTS: dict[tuple[int, int, tuple[str, ...]], SimpleQueue[Sender]] = {}


def _senders(channel: str) -> tuple[SimpleQueue[Sender], ThreadPoolExecutor | None]:
    """Clients for a batch's sends, and the threads to run them on (none when
    RUTA_SEND_CONCURRENCY is 1: one send after another, in this thread)."""
    config = current_app.config
    count = max(1, int(config.get("RUTA_SEND_CONCURRENCY") or 1))
    key = (channel, *(str(config.get(name)) for name in _SENDER_SETTINGS))
    pid = os.getpid()
    clients = _SEND_CLIENTS.get((pid, count, key))
    if clients is None:
        clients = _SEND_CLIENTS[(pid, count, key)] = SimpleQueue()
        for _ in range(count):
            clients.put(build_sender(channel, config))
    if count == 1:
        return clients, None
    pool = _SEND_POOLS.get((pid, count))
    if pool is None:
        pool = _SEND_POOLS[(pid, count)] = ThreadPoolExecutor(count, "ruta-send")
    return clients, pool


Sent = SendResult | SendError | None


def _send_each(
    sends: list[handover.Send],
    senders: tuple[SimpleQueue[Sender], ThreadPoolExecutor | None],
    callback: str | None,
    claimed_at: float,
) -> Iterator[Sent]:
    """Each alert's outcome, in the batch's order, as it is known: the provider's answer, its
    error, or None for one not sent because the send window had closed. Up to
    RUTA_SEND_CONCURRENCY alerts are in flight at any time (a provider call is mostly
    waiting), whatever the chunks their outcomes are written in; all are claimed already, so a
    worker killed meanwhile leaves those in flight and those answered but not yet written for
    the sweeper to settle. Closing the iterator early starts no further send."""
    clients, pool = senders

    def send(item: handover.Send) -> Sent:
        if time.monotonic() - claimed_at > SEND_WINDOW:
            return None
        client = clients.get()
        try:
            return client.send(item.to, item.body, status_callback=callback)
        except SendError as exc:
            return exc
        finally:
            clients.put(client)

    if pool is None:
        return (send(item) for item in sends)
    return pool.map(send, sends)


def _failed_alert(message_id: int, reason: str) -> None:
    with db.transaction() as session:
        work = referrals.alert_failed(session, message_id, now=clock.now(), reason=reason)
    hand_over(work)


def drain_referrals(slot: int = 0) -> dict[str, int]:
    """Hand pending referrals over, a batch at a time, while there are any; then look again
    every GATHER seconds for LINGER seconds, so cases arriving one by one go out a few at a
    time rather than a job each. While it works it holds the drain flag (no other drain job is
    queued for new work); after DRAIN_SECONDS it queues its successor behind whatever else
    waits on the queue.

    A drain that claims a whole batch (a backlog) queues helpers, up to RUTA_REFERRAL_DRAINS
    drains in all, so other workers claim batches beside it (``FOR UPDATE SKIP LOCKED``: never
    the same events). A helper (``slot`` > 0) stops at its first batch that is not whole."""
    redis = current_app.extensions["ruta.redis"]
    prefix = current_app.config["RUTA_QUEUE_PREFIX"]
    config = current_app.config
    channel = referrals.outbound_channel(config)
    done: Counter[str] = Counter()
    flag = drain_flag(slot)
    if configuration_problem(channel, config):
        # The cases stay "new", their deadlines not started, until alerts can go out; the
        # sweeper queues this job again every minute.
        release(redis, prefix, flag)
        return dict(done)
    limit = max(1, int(config.get("RUTA_REFERRAL_BATCH") or 50))
    drains = max(1, int(config.get("RUTA_REFERRAL_DRAINS") or 1))
    try:
        if slot:
            return _help(redis, prefix, flag, channel, limit, done)
        return _drain(redis, prefix, channel, limit, drains, done)
    except BaseException:
        release(redis, prefix, flag)  # the next work queues a drain at once
        raise


def _drain(
    redis: Any, prefix: str, channel: str, limit: int, drains: int, done: Counter[str]
) -> dict[str, int]:
    started = time.monotonic()
    idle_since: float | None = None
    while True:
        hold(redis, prefix, DRAIN)
        claimed = _drain_batch(channel, limit, done)
        now = time.monotonic()
        if now - started >= DRAIN_SECONDS:
            release(redis, prefix, DRAIN)
            kick_referrals()  # after release: work committed from here on is its successor's
            return dict(done)
        if claimed == limit:
            for slot in range(1, drains):
                kick_referrals(slot=slot)  # a flag already set: nothing sent but the SET
            idle_since = None
            continue
        if claimed:
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif now - idle_since >= LINGER:
            break
        time.sleep(GATHER)
    # From here new work queues another drain; what was committed before is claimed now (and
    # if a whole batch is, more may wait: a drain is queued for it).
    release(redis, prefix, DRAIN)
    if _drain_batch(channel, limit, done) == limit:
        kick_referrals()
    return dict(done)


def _help(
    redis: Any, prefix: str, flag: str, channel: str, limit: int, done: Counter[str]
) -> dict[str, int]:
    """A helper's loop: whole batches only, for at most DRAIN_SECONDS; what is left when it
    stops is the first drain's (which holds its own flag until it has looked once more)."""
    started = time.monotonic()
    while time.monotonic() - started < DRAIN_SECONDS:
        hold(redis, prefix, flag)
        if _drain_batch(channel, limit, done) < limit:
            break
    release(redis, prefix, flag)
    return dict(done)


def _drain_batch(channel: str, limit: int, done: Counter[str]) -> int:
    """Claim one batch, send its alerts; how many events it claimed."""
    with db.transaction() as session:
        batch = handover.claim(
            session, now=clock.now(), policy=_policy(), channel=channel, limit=limit
        )
    claimed_at = time.monotonic()
    if batch.claimed:
        done["batches"] += 1
        done["events"] += batch.claimed
        schedule_deadlines([when for _case_id, when in batch.deadlines])
        done.update(_send_alerts(batch, channel, claimed_at))
    return batch.claimed


def _send_alerts(batch: handover.Batch, channel: str, claimed_at: float) -> Counter[str]:
    """Send a batch's alerts, one provider call each (Twilio has no batch API), recording the
    outcomes of each chunk of OUTCOMES_EVERY in one statement; then act on the failures."""
    done: Counter[str] = Counter(suppressed=len(batch.suppressed))
    failures = [(message_id, "opted out") for message_id in batch.suppressed]
    retry_later: list[int] = []  # a transient error: sent again by its own job, after a while
    released: list[int] = []  # never tried (the send window closed): sent by their own job
    if batch.suppressed:
        metrics.outcomes(channel, suppressed=len(batch.suppressed))
    callback = status_callback_url(current_app.config, channel)
    sent_each = (
        _send_each(batch.sends, _senders(channel), callback, claimed_at) if batch.sends else None
    )
    for start in range(0, len(batch.sends), OUTCOMES_EVERY):
        outcomes: dict[int, dict[str, Any]] = {}
        counts: Counter[str] = Counter()
        handoffs: list[float] = []
        chunk = batch.sends[start : start + OUTCOMES_EVERY]
        # The chunk first: zip stops at its end without taking the next outcome.
        for item, sent in zip(chunk, sent_each or (), strict=False):
            if sent is None:  # the send window closed before its turn
                outcomes[item.message_id] = {"status": MessageStatus.QUEUED.value, "attempts": 0}
                released.append(item.message_id)
                continue
            if isinstance(sent, OutcomeUnknown):
                # It may be out: left claimed for the sweeper to settle, never sent blindly.
                outcomes[item.message_id] = {"error_code": sent.code}
                log.warning(
                    "send outcome unknown, left for the sweeper: message=%s", item.message_id
                )
                counts["unknown"] += 1
                continue
            if isinstance(sent, SendError):
                exc = sent
                final = exc.permanent or MAX_SEND_ATTEMPTS <= 1
                status = MessageStatus.FAILED if final else MessageStatus.QUEUED
                outcomes[item.message_id] = {"status": status.value, "error_code": exc.code}
                counts["failed" if final else "retried"] += 1
                counts["permanent_errors" if exc.permanent else "transient_errors"] += 1
                log.warning(
                    "send failed: message=%s code=%s permanent=%s attempt=1",
                    item.message_id,
                    exc.code,
                    exc.permanent,
                )
                if final:
                    failures.append((item.message_id, f"provider error {exc.code}"))
                else:
                    retry_later.append(item.message_id)
                continue
            result = sent
            outcomes[item.message_id] = {
                "status": MessageStatus.SENT.value,
                "provider_message_id": result.provider_message_id,
                "error_code": None,
            }
            counts["sent"] += 1
            handoffs.append((clock.now() - item.raised_at).total_seconds())
        with db.transaction() as session:
            # Only claims still ours: a delivery report may have got there first.
            handover.update_each(
                session,
                handover.MESSAGES,
                outcomes,
                handover.MESSAGES.c.status == MessageStatus.SENDING.value,
            )
        metrics.outcomes(
            channel,
            sent=counts["sent"],
            failed=counts["failed"],
            retried=counts["retried"],
            permanent_errors=counts["permanent_errors"],
            transient_errors=counts["transient_errors"],
            handoffs=handoffs,
        )
        done.update(counts)
    redis = current_app.extensions["ruta.redis"]
    prefix = current_app.config["RUTA_QUEUE_PREFIX"]
    when = clock.now() + timedelta(seconds=(SEND_RETRY.intervals or [5])[0])
    for message_id in retry_later:
        enqueue_at(redis, prefix, when, send_message, message_id, priority=HIGH, retry=SEND_RETRY)
    for message_id in released:
        enqueue(redis, prefix, send_message, message_id, priority=HIGH, retry=SEND_RETRY)
    done["released"] = len(released)
    _failed_alerts(failures)
    return done


def _failed_alerts(failures: list[tuple[int, str]]) -> None:
    """Alerts that reach nobody move their cases on, in one transaction, once every outcome of
    the batch is recorded (so a position whose alerts all failed is seen as such)."""
    if not failures:
        return
    work = Work()
    with db.transaction() as session:
        for message_id, reason in failures:
            work.merge(referrals.alert_failed(session, message_id, now=clock.now(), reason=reason))
    hand_over(work)


def dispatch_event(event_id: int) -> int:
    """A job queued before referrals were drained in batches (an upgrade with jobs waiting):
    its event is pending like any other, and the drain takes it."""
    return drain_referrals().get("sent", 0)


def check_deadlines() -> int:
    """Escalate every case forwarded and past its deadline (an indexed scan of
    ``cases.deadline_at``), a transaction per DEADLINE_BATCH cases; returns how many."""
    # Released at once: a case due while this scan runs queues the next one.
    release(
        current_app.extensions["ruta.redis"], current_app.config["RUTA_QUEUE_PREFIX"], DEADLINES
    )
    escalated = 0
    while True:
        with db.transaction() as session:
            work, found = handover.escalate_due(session, now=clock.now(), limit=DEADLINE_BATCH)
        hand_over(work)
        escalated += found
        if found < DEADLINE_BATCH:
            return escalated


def check_deadline(case_id: int) -> None:
    """One case's deadline: jobs scheduled before deadlines were scanned (an upgrade)."""
    with db.transaction() as session:
        work = referrals.check_deadline(session, case_id, now=clock.now())
    hand_over(work)


def sweep() -> dict[str, int]:
    """Hand over again whatever no job is carrying: stuck messages, undispatched events,
    missed deadlines (Redis was down, a worker died, the scheduler was off)."""
    now = clock.now()
    cutoff = now - SWEEP_AFTER
    try:
        spooled = drain_spool()  # first: what people sent while the database was away
    except StillUnavailable:
        spooled = 0
    resumed = resume_messages(_twilio, now=now, cutoff=cutoff, max_attempts=MAX_SEND_ATTEMPTS)
    for message_id in resumed.gave_up:
        _failed_alert(message_id, f"no answer from the provider after {MAX_SEND_ATTEMPTS} attempts")
    with db.transaction() as session:
        messages = list(
            session.scalars(
                select(Message.id).where(
                    Message.status == MessageStatus.QUEUED.value, Message.updated_at < cutoff
                )
            )
        )
        events = session.scalar(
            select(func.count()).where(
                OutboxEvent.dispatched_at.is_(None), OutboxEvent.created_at < cutoff
            )
        )
        due = session.scalar(
            select(func.count()).where(
                Case.status == CaseStatus.FORWARDED.value, Case.deadline_at <= now
            )
        )
    redis = current_app.extensions["ruta.redis"]
    prefix = current_app.config["RUTA_QUEUE_PREFIX"]
    handed = {"messages": 0, "events": 0, "deadlines": 0, "spooled": spooled}
    handed["messages_found_sent"] = resumed.found_sent
    for message_id in sorted({*messages, *resumed.resend}):
        handed["messages"] += enqueue(redis, prefix, send_message, message_id, retry=SEND_RETRY)
    if events and kick_referrals(force=True):  # left for minutes: no drain is taking them
        handed["events"] = int(events)
    if due and enqueue_coalesced(
        redis, prefix, DEADLINES, check_deadlines, priority=HIGH, timeout=BATCH_JOB_TIMEOUT
    ):
        handed["deadlines"] = int(due)
    handed.update(resume_broadcasts())
    with db.transaction() as session:
        handed["people_erased"] = erasure.erase_requested(session, now)
    handed.update(_retention(redis, prefix, now))
    return handed


def _retention(redis: Any, prefix: str, now: datetime) -> dict[str, int]:
    """Retention, at most once an hour across all workers (a Redis key decides which)."""
    done = {"message_texts_purged": 0, "question_texts_purged": 0, "cases_anonymised": 0}
    try:
        if not redis.set(f"{prefix}:retention-ran", "1", nx=True, ex=RETENTION_EVERY):
            return done
    except RedisError:
        pass  # no Redis: run anyway, it is idempotent
    config = current_app.config
    with db.transaction() as session:
        days = int(config["RUTA_MESSAGE_RETENTION_DAYS"])
        done["message_texts_purged"] = retention.purge_message_text(session, now, days)
        done["question_texts_purged"] = retention.purge_question_text(session, now, days)
        done["cases_anonymised"] = erasure.anonymise_closed_cases(
            session, now, int(config["RUTA_CASE_ANONYMISE_DAYS"])
        )
    return done
