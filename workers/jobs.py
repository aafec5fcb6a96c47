"""Jobs: send one message, dispatch a referral event, check a deadline, sweep for lost work.

Jobs take ids only and re-load rows; exceptions propagate so RQ's Retry and failed-job registry
work. Each job commits before it hands follow-up work to RQ.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import CursorResult, select, update

from gateway.senders import (
    OutcomeUnknown,
    Sender,
    SendError,
    TwilioSender,
    build_sender,
    configuration_problem,
    status_callback_url,
)
from ruta import clock, erasure, metrics, referrals, retention
from ruta import policy as policies
from ruta.db import db
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
from workers.queues import DEFAULT, HIGH, SEND_RETRY, enqueue, enqueue_at
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


def _policy() -> policies.Policy:
    return policies.load(current_app.config.get("RUTA_POLICY_FILE"))


def hand_over(work: Work) -> None:
    """Give committed work to RQ. Whatever Redis refuses stays in the database for the sweeper."""
    redis = current_app.extensions["ruta.redis"]
    prefix = current_app.config["RUTA_QUEUE_PREFIX"]
    for message_id in work.message_ids:
        enqueue(redis, prefix, send_message, message_id, priority=HIGH, retry=SEND_RETRY)
    for event_id in work.outbox_ids:
        enqueue(redis, prefix, dispatch_event, event_id, priority=HIGH, retry=SEND_RETRY)
    for case_id, when in work.deadlines:
        enqueue_at(redis, prefix, when, check_deadline, case_id, priority=HIGH)


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


def _failed_alert(message_id: int, reason: str) -> None:
    with db.transaction() as session:
        work = referrals.alert_failed(session, message_id, now=clock.now(), reason=reason)
    hand_over(work)


def dispatch_event(event_id: int) -> int:
    """Dispatch a referral event: record an alert per focal point, then send them."""
    channel = referrals.outbound_channel(current_app.config)
    if configuration_problem(channel, current_app.config):
        # The case stays "new", its deadline not started, until alerts can go out; the sweeper
        # hands the event over again.
        return 0
    with db.transaction() as session:
        work = referrals.dispatch(
            session,
            event_id,
            now=clock.now(),
            policy=_policy(),
            channel=channel,
        )
    for case_id, when in work.deadlines:
        enqueue_at(
            current_app.extensions["ruta.redis"],
            current_app.config["RUTA_QUEUE_PREFIX"],
            when,
            check_deadline,
            case_id,
            priority=HIGH,
        )
    for message_id in work.message_ids:
        send_message(message_id)  # inline: the alert goes out in this job, retried with it
    return len(work.message_ids)


def check_deadline(case_id: int) -> None:
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
        events = list(
            session.scalars(
                select(OutboxEvent.id).where(
                    OutboxEvent.dispatched_at.is_(None), OutboxEvent.created_at < cutoff
                )
            )
        )
        due = list(
            session.scalars(
                select(Case.id).where(
                    Case.status == CaseStatus.FORWARDED.value, Case.deadline_at <= now
                )
            )
        )
    redis = current_app.extensions["ruta.redis"]
    prefix = current_app.config["RUTA_QUEUE_PREFIX"]
    handed = {"messages": 0, "events": 0, "deadlines": 0, "spooled": spooled}
    handed["messages_found_sent"] = resumed.found_sent
    for message_id in sorted({*messages, *resumed.resend}):
        handed["messages"] += enqueue(redis, prefix, send_message, message_id, retry=SEND_RETRY)
    for event_id in events:
        handed["events"] += enqueue(redis, prefix, dispatch_event, event_id, retry=SEND_RETRY)
    for case_id in due:
        handed["deadlines"] += enqueue(redis, prefix, check_deadline, case_id, priority=DEFAULT)
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
