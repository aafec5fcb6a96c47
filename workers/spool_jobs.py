"""Drain the spool (ruta/spool.py) once the database answers again: every kept message runs
through the same path as a live one, oldest first, and its replies go out through the
provider's API (the webhook that kept it answered without one)."""

from __future__ import annotations

import logging

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import select, update

from ruta import spool
from ruta.conversation import InboundMessage, Route, handle_inbound
from ruta.db import UNAVAILABLE, db
from ruta.models import Message, MessageStatus
from ruta.referrals import Work

log = logging.getLogger(__name__)

#: Entries read from the stream at a time.
BATCH = 100
#: One drainer at a time keeps the order; the lock outlives a crashed drainer by this much.
LOCK_SECONDS = 300


class StillUnavailable(RuntimeError):
    """The database is still away: entries wait in the spool, in order."""


def drain_spool() -> int:
    """Process every spooled entry, oldest first; how many. Raises ``StillUnavailable`` (so RQ
    retries) when the database is still away; nothing is lost or reordered then."""
    redis = current_app.extensions["ruta.redis"]
    prefix = current_app.config["RUTA_QUEUE_PREFIX"]
    lock = f"{spool.stream(prefix)}:lock"
    try:
        if not redis.set(lock, "1", nx=True, ex=LOCK_SECONDS):
            return 0  # another worker is draining, in order
    except RedisError:
        return 0
    done = 0
    try:
        while batch := spool.oldest(redis, prefix, BATCH):
            for entry_id, entry in batch:
                try:
                    _process(entry)
                except UNAVAILABLE as exc:
                    log.warning("spool: database still unavailable (%s)", type(exc).__name__)
                    raise StillUnavailable(f"{spool.waiting(redis, prefix)} waiting") from exc
                spool.remove(redis, prefix, entry_id)
                done += 1
    finally:
        redis.delete(lock)
    if done:
        log.info("spool: %s entries processed after the database came back", done)
    return done


def _process(entry: spool.Entry) -> None:
    from ruta.budgets import sms_budget
    from ruta.delivery_reports import apply_report
    from ruta.jobqueue import hand_over

    if entry.kind == "report":
        assert entry.provider_message_id and entry.status
        apply_report(
            entry.channel,
            entry.provider_message_id,
            MessageStatus(entry.status),
            entry.error,
            entry.to,
        )
        return
    # The same screens a live message gets; the webhook has answered, so replies go through
    # the provider's API.
    route = Route.configured(current_app.config, sms_budget(), reply_inline=False)
    message = InboundMessage(
        entry.channel,
        entry.sender or "",
        entry.text or "",
        provider_message_id=entry.provider_message_id,
        received_at=spool.received_at(entry),
    )
    # The time the person sent it: a conversation kept for an hour has not timed out meanwhile.
    handled = handle_inbound(
        db,
        current_app.extensions["ruta.flows"],
        message,
        route,
        now=spool.received_at(entry),
        directory=current_app.extensions.get("ruta.directory"),
    )
    work = handled.work
    if handled.duplicate:
        work = _unsent_inline_replies(entry)
    hand_over(work)


def _unsent_inline_replies(entry: spool.Entry) -> Work:
    """The message was handled although its webhook timed out (the commit reached the database,
    its answer did not): the reply written for the webhook never reached the person. Send it."""
    with db.transaction() as session:
        inbound = select(Message.id).where(
            Message.channel == entry.channel,
            Message.provider_message_id == entry.provider_message_id,
        )
        replies = list(
            session.scalars(
                update(Message)
                .where(
                    Message.in_reply_to_id.in_(inbound.scalar_subquery()),
                    Message.status == MessageStatus.REPLIED_INLINE.value,
                )
                .values(status=MessageStatus.QUEUED.value)
                .returning(Message.id)
            )
        )
    return Work(message_ids=replies)
