"""Broadcast jobs: start one (ledger), send it in batches under the rate limit, resume lost work.

Jobs take ids only. ``start_broadcast`` waits for the scheduled time and the end of the
country's quiet hours (unless urgent), writes the ledger and starts ``PARALLEL_CHAINS`` chains
of ``send_batch`` jobs; each batch enqueues the next until nothing is pending. No database
transaction is open while a provider is called. Broadcasts run on the low queue, and a batch
stops between chunks when work waits on a higher queue (a referral alert, a reply), giving
back what it has not sent: an alert waits for one chunk at most, not for a whole batch.

Delivery guarantee: nobody is skipped, and nobody gets a broadcast twice over Twilio. Each
outcome is written as soon as the provider answers (Twilio: per message; Africa's Talking: per
API call). A worker killed between the provider's acceptance and that write leaves its rows in
"sending"; ``resume_broadcasts`` (run by the sweeper) settles them after ``RESUME_AFTER``: it
asks Twilio whether the one message in flight went out (``workers.settlement``, shared with
single messages; then it is recorded as sent) and puts the rest back to pending. Africa's
Talking cannot be asked: delivery reports of the call in flight settle its rows
(gateway/delivery.py); without them its recipients get that broadcast twice.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import update

from providers.bulk import AfricasTalkingBulkSender, Outcome, build_bulk_sender
from providers.senders import (
    SendError,
    SendResult,
    TwilioSender,
    build_sender,
    status_callback_url,
)
from ruta import broadcasts, clock, metrics, rate_limit, referrals
from ruta import policy as policies
from ruta.db import db
from ruta.jobqueue import LOW, SEND_RETRY, enqueue, enqueue_at, queue_name, queues
from ruta.models import (
    Broadcast,
    BroadcastRecipient,
    BroadcastStatus,
    Contact,
    RecipientStatus,
)
from workers import settlement

log = logging.getLogger(__name__)

#: Batch chains sending one broadcast at once (each needs a worker while it runs).
PARALLEL_CHAINS = 2
#: Rows claimed but not finished for this long belong to a dead worker.
RESUME_AFTER = timedelta(minutes=2)
#: A batch is sized to take about this long at the rate limit (the job timeout is 60 s).
BATCH_SECONDS = 20.0
#: Twilio messages sent between two checks of cancellation and opt-outs.
CHECK_EVERY = 10

_TWILIO: dict[tuple[str, ...], TwilioSender] = {}
_BULK: dict[tuple[str, ...], AfricasTalkingBulkSender] = {}
_SETTINGS = (
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


def _config() -> Any:
    return current_app.config


def _policy() -> policies.Policy:
    return policies.load(_config().get("RUTA_POLICY_FILE"))


def _pause_sensitive() -> bool:
    return bool(_config().get("RUTA_PAUSE_SENSITIVE_CASES", True))


def _rate() -> float:
    return float(_config().get("RUTA_BROADCAST_RATE") or 0)


def batch_size() -> int:
    size = max(1, int(_config().get("RUTA_BROADCAST_BATCH") or 100))
    rate = _rate()
    if rate > 0:  # shared by the chains, a batch must end well within the job timeout
        size = min(size, max(1, int(rate * BATCH_SECONDS / PARALLEL_CHAINS)))
    return size


def _key() -> tuple[str, ...]:
    return tuple(str(_config().get(name)) for name in _SETTINGS)


def twilio_sender() -> TwilioSender:
    key = _key()
    if key not in _TWILIO:
        sender = build_sender("twilio", _config())
        assert isinstance(sender, TwilioSender)
        _TWILIO[key] = sender
    return _TWILIO[key]


def bulk_sender() -> AfricasTalkingBulkSender:
    key = _key()
    if key not in _BULK:
        _BULK[key] = build_bulk_sender(_config())
    return _BULK[key]


def _rate_key(channel: str) -> str:
    config = _config()
    if channel == "twilio":
        sender = config.get("TWILIO_FROM_NUMBER")
    else:
        sender = config.get("AT_SENDER_ID") or config.get("AT_USERNAME")
    return f"{config['RUTA_QUEUE_PREFIX']}:broadcast-rate:{channel}:{sender}"


def _enqueue_batch(broadcast_id: int) -> bool:
    return enqueue(
        current_app.extensions["ruta.redis"],
        _config()["RUTA_QUEUE_PREFIX"],
        send_batch,
        broadcast_id,
        priority=LOW,
        retry=SEND_RETRY,
    )


def _enqueue_start(broadcast_id: int, when: datetime | None = None) -> bool:
    redis = current_app.extensions["ruta.redis"]
    prefix = _config()["RUTA_QUEUE_PREFIX"]
    if when is None:
        return enqueue(redis, prefix, start_broadcast, broadcast_id, priority=LOW)
    return enqueue_at(redis, prefix, when, start_broadcast, broadcast_id, priority=LOW)


def _not_before(session: Any, broadcast: Broadcast, now: datetime) -> datetime | None:
    """When a broadcast that should start now must wait instead: its time, quiet hours."""
    if broadcast.scheduled_at is not None and broadcast.scheduled_at > now:
        return broadcast.scheduled_at
    if broadcast.urgent:
        return None
    return broadcasts.quiet_until(_policy(), broadcasts.country_of(session, broadcast), now)


def start_broadcast(broadcast_id: int) -> str:
    """Start a scheduled broadcast: wait for its time and the end of quiet hours (re-enqueued
    with ``enqueue_at``), write the ledger, start the batch chains."""
    now = clock.now()
    with db.transaction() as session:
        broadcast = session.get(Broadcast, broadcast_id, with_for_update=True)
        if broadcast is None or broadcast.status != BroadcastStatus.SCHEDULED.value:
            return "not scheduled"
        later = _not_before(session, broadcast, now)
        if later is None:
            total = broadcasts.start(
                session, broadcast_id, now, policy=_policy(), pause_sensitive=_pause_sensitive()
            )
            done = broadcasts.finish_if_done(session, broadcast_id, now)
    if later is not None:
        _enqueue_start(broadcast_id, later)
        log.info("broadcast %s waits until %s", broadcast_id, later.isoformat())
        return "delayed"
    if done or not total:
        return "done"
    for _ in range(min(PARALLEL_CHAINS, math.ceil(total / batch_size()))):
        _enqueue_batch(broadcast_id)
    return "started"


@dataclass
class _Row:
    id: int
    contact_id: int
    language: str


def _finish_rows(ids: list[int], now: datetime, **values: Any) -> None:
    if not ids:
        return
    with db.transaction() as session:
        session.execute(
            update(BroadcastRecipient)
            .where(BroadcastRecipient.id.in_(ids))
            .values(updated_at=now, **values),
            execution_options={"synchronize_session": False},
        )


def _record(row_id: int, outcome: Outcome, now: datetime) -> bool:
    """Write one provider outcome to the ledger; True when it was a transient error."""
    if isinstance(outcome, SendResult):
        values: dict[str, Any] = {
            "status": RecipientStatus.SENT.value,
            "provider_message_id": outcome.provider_message_id,
            "error_code": None,
        }
    elif outcome.permanent:
        values = {"status": RecipientStatus.FAILED.value, "error_code": outcome.code}
    else:
        values = {"status": RecipientStatus.PENDING.value, "error_code": outcome.code}
    with db.transaction() as session:
        session.execute(
            update(BroadcastRecipient)
            .where(
                BroadcastRecipient.id == row_id,
                # A delivery report may have got there first (gateway/delivery.py).
                BroadcastRecipient.status == RecipientStatus.SENDING.value,
            )
            .values(updated_at=now, **values),
            execution_options={"synchronize_session": False},
        )
    return isinstance(outcome, SendError) and not outcome.permanent


def _record_many(results: list[tuple[int, Outcome]], now: datetime) -> int:
    """Write the outcomes of one API call in one transaction (one executemany); returns how
    many were transient errors (their rows go back to pending)."""
    transient = 0
    rows: list[dict[str, Any]] = []
    for row_id, outcome in results:
        if isinstance(outcome, SendResult):
            status, message_id, code = RecipientStatus.SENT, outcome.provider_message_id, None
        else:
            permanent = outcome.permanent
            transient += not permanent
            status = RecipientStatus.FAILED if permanent else RecipientStatus.PENDING
            message_id, code = None, outcome.code
        rows.append(
            {
                "id": row_id,
                "status": status.value,
                "provider_message_id": message_id,
                "error_code": code,
                "updated_at": now,
            }
        )
    if rows:
        with db.transaction() as session:
            # Only rows still claimed: a delivery report may have got there first.
            session.execute(
                update(BroadcastRecipient).where(
                    BroadcastRecipient.status == RecipientStatus.SENDING.value
                ),
                rows,
                execution_options={"synchronize_session": None},
            )
    return transient


def _check(broadcast_id: int, rows: list[_Row], now: datetime) -> tuple[bool, dict[int, str]]:
    """Right before sending: is the broadcast still sending, and the numbers of those in
    ``rows`` who may still receive it; the others (opted out, paused) are skipped."""
    with db.transaction() as session:
        status = session.get(Broadcast, broadcast_id)
        if status is None or status.status != BroadcastStatus.SENDING.value:
            skipped = [row.id for row in rows]
            session.execute(
                update(BroadcastRecipient)
                .where(
                    BroadcastRecipient.id.in_(skipped),
                    BroadcastRecipient.status == RecipientStatus.SENDING.value,
                )
                .values(
                    status=RecipientStatus.SKIPPED.value, error_code="cancelled", updated_at=now
                ),
                execution_options={"synchronize_session": False},
            )
            return False, {}
        contact_ids = [row.contact_id for row in rows]
        paused = broadcasts.paused_contacts(session, contact_ids, _policy(), _pause_sensitive())
        if paused:
            session.execute(
                update(BroadcastRecipient)
                .where(
                    BroadcastRecipient.id.in_([r.id for r in rows if r.contact_id in paused]),
                )
                .values(
                    status=RecipientStatus.SKIPPED.value, error_code="opted_out", updated_at=now
                ),
                execution_options={"synchronize_session": False},
            )
        wanted = [c for c in contact_ids if c not in paused]
        phones = {
            contact.id: contact.phone
            for contact in session.query(Contact).filter(Contact.id.in_(wanted))
        }
    return True, {row.id: phones[row.contact_id] for row in rows if row.contact_id in phones}


def send_batch(broadcast_id: int) -> str:
    """Claim a batch and send it under the rate limit; enqueue the next batch (or mark the
    broadcast done). A transient provider error puts its rows back to pending and raises, so
    RQ retries this job (and with it the chain)."""
    now = clock.now()
    with db.transaction() as session:
        claimed = broadcasts.claim_batch(session, broadcast_id, batch_size(), now)
        if not claimed:
            done = broadcasts.finish_if_done(session, broadcast_id, now)
            return "done" if done else "nothing to send"
        broadcast = session.get(Broadcast, broadcast_id)
        assert broadcast is not None
        channel = broadcast.channel or referrals.outbound_channel(_config())
        texts = {row.language: broadcasts.text_for(broadcast, row.language) for row in claimed}
        rows = [_Row(row.id, row.contact_id, row.language) for row in claimed]
    try:
        outcome = _send(broadcast_id, channel, rows, texts)
    except rate_limit.RateLimitTimeout:
        outcome = "rate limited"
    if outcome in ("rate limited", "yielded", "transient"):
        _give_back(rows)  # what was claimed and not sent: the next job (or retry) goes on
    if outcome in ("rate limited", "yielded"):
        _enqueue_batch(broadcast_id)
        return outcome
    if outcome == "transient":
        raise SendError("a provider refused part of the batch for now", permanent=False)
    with db.transaction() as session:
        more = outcome == "sent" and broadcasts.has_pending(session, broadcast_id)
        if not more:
            broadcasts.finish_if_done(session, broadcast_id, clock.now())
    if more:
        _enqueue_batch(broadcast_id)
    return outcome


def _give_back(rows: list[_Row]) -> None:
    """Rows of ``rows`` still claimed (not sent) go back to pending."""
    with db.transaction() as session:
        session.execute(
            update(BroadcastRecipient)
            .where(
                BroadcastRecipient.id.in_([row.id for row in rows]),
                BroadcastRecipient.status == RecipientStatus.SENDING.value,
            )
            .values(status=RecipientStatus.PENDING.value, updated_at=clock.now()),
            execution_options={"synchronize_session": False},
        )


def _urgent_work_waiting() -> bool:
    """Whether referral alerts, replies or deadline checks wait in a queue above the
    broadcasts' (one LLEN each): a batch then stops between chunks and lets its worker go."""
    redis = current_app.extensions["ruta.redis"]
    prefix = _config()["RUTA_QUEUE_PREFIX"]
    try:
        return any(
            queue.count for queue in queues(redis, prefix) if queue.name != queue_name(prefix, LOW)
        )
    except RedisError:
        return False


def _send(broadcast_id: int, channel: str, rows: list[_Row], texts: dict[str, str]) -> str:
    """Send ``rows``; "sent", "cancelled", "transient" (some rows went back to pending) or
    "yielded" (stopped between chunks for more urgent work; the rest is still claimed).
    The first chunk always goes, so a broadcast moves on even under a steady stream of
    urgent work."""
    redis = current_app.extensions["ruta.redis"]
    key, rate = _rate_key(channel), _rate()
    transient = 0
    if channel == "africastalking":
        step = min(len(rows), max(1, int(rate))) if rate > 0 else len(rows)
    else:
        step = CHECK_EVERY
    for start in range(0, len(rows), step):
        if start and _urgent_work_waiting():
            return "transient" if transient else "yielded"
        chunk = rows[start : start + step]
        going, phones = _check(broadcast_id, chunk, clock.now())
        if not going:
            # The rest of the batch was claimed too: skip it as well.
            _check(broadcast_id, rows[start + step :], clock.now())
            return "cancelled"
        if channel == "africastalking":
            by_language: dict[str, list[_Row]] = defaultdict(list)
            for row in chunk:
                if row.id in phones:
                    by_language[row.language].append(row)
            for language, group in by_language.items():
                rate_limit.acquire(redis, key, rate, len(group))
                results = bulk_sender().send_many([phones[r.id] for r in group], texts[language])
                _count(channel, results)
                transient += _record_many(
                    [(r.id, res) for r, res in zip(group, results, strict=True)], clock.now()
                )
        else:
            sender = twilio_sender()
            callback = status_callback_url(_config(), channel)
            for row in chunk:
                if row.id not in phones:
                    continue
                rate_limit.acquire(redis, key, rate, 1)
                try:
                    result: Outcome = sender.send(
                        phones[row.id], texts[row.language], status_callback=callback
                    )
                except SendError as exc:
                    result = exc
                _count(channel, [result])
                transient += _record(row.id, result, clock.now())
    if transient:
        log.warning("broadcast %s: %s sends to retry", broadcast_id, transient)
        return "transient"
    return "sent"


def _count(channel: str, results: list[Outcome]) -> None:
    errors = [r for r in results if isinstance(r, SendError)]
    permanent = sum(e.permanent for e in errors)
    metrics.outcomes(
        channel,
        sent=len(results) - len(errors),
        failed=permanent,
        retried=len(errors) - permanent,
        permanent_errors=permanent,
        transient_errors=len(errors) - permanent,
    )


def _ask_twilio(claims: list[broadcasts.StuckClaim]) -> tuple[dict[int, str], set[int]]:
    """For each stuck Twilio claim, ask Twilio whether its first row's message went out (the
    rest of a claim was never sent). Returns {row id: sid} of those it has, and the row ids of
    claims it could not be asked about (left as they are until the next sweep)."""
    if not claims:
        return {}, set()
    with db.transaction() as session:
        firsts = {
            row.id: row
            for row in session.query(BroadcastRecipient).filter(
                BroadcastRecipient.id.in_([c.first for c in claims])
            )
        }
        in_flight = []
        for claim in claims:
            row = firsts[claim.first]
            broadcast = session.get(Broadcast, claim.broadcast_id)
            contact = session.get(Contact, row.contact_id)
            assert broadcast is not None and contact is not None
            text = broadcasts.text_for(broadcast, row.language)
            in_flight.append(
                settlement.InFlight(claim.first, contact.phone, text, claim.claimed_at)
            )
    answers = settlement.ask_twilio(twilio_sender, in_flight)
    unknown = {row_id for c in claims if c.first in answers.unknown for row_id in c.row_ids}
    return answers.sent, unknown


def resume_broadcasts() -> dict[str, int]:
    """For the sweeper: rows stuck in "sending" longer than ``RESUME_AFTER`` (their worker
    died) go back to pending, except a message Twilio says it has already (see
    ``_ask_twilio``); Africa's Talking has no such lookup, so the recipients of the call in
    flight when a worker died may get it twice. Sending broadcasts with pending rows that no
    job carries get a batch job; scheduled broadcasts whose start job was lost (Redis down)
    and that may go out now are started again."""
    now = clock.now()
    cutoff = now - RESUME_AFTER
    default_channel = referrals.outbound_channel(_config())
    with db.transaction() as session:
        claims = broadcasts.stuck_claims(session, cutoff)
        channels = {
            b.id: b.channel or default_channel
            for b in session.query(Broadcast).filter(
                Broadcast.id.in_({c.broadcast_id for c in claims})
            )
        }
    sent, unknown = _ask_twilio([c for c in claims if channels[c.broadcast_id] == "twilio"])
    with db.transaction() as session:
        reset_ids = [
            row_id
            for claim in claims
            for row_id in claim.row_ids
            if row_id not in sent and row_id not in unknown
        ]
        reset = broadcasts.settle_stuck(session, sent, reset_ids, now)
        carry = {c.broadcast_id for c in claims} | set(broadcasts.stalled(session, cutoff))
        lost = [
            b.id
            for b in session.query(Broadcast).filter(
                Broadcast.status == BroadcastStatus.SCHEDULED.value,
                Broadcast.created_at < cutoff,
            )
            if (b.scheduled_at is None or b.scheduled_at < cutoff)
            and _not_before(session, b, now) is None
        ]
    handed = {
        "broadcast_rows_reset": reset,
        "broadcast_rows_found_sent": len(sent),
        "broadcast_batches": 0,
        "broadcast_starts": 0,
    }
    for broadcast_id in sorted(carry):
        handed["broadcast_batches"] += _enqueue_batch(broadcast_id)
    for broadcast_id in lost:
        handed["broadcast_starts"] += _enqueue_start(broadcast_id)
    return handed
