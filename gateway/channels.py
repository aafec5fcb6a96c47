"""What every channel adapter shares: the budget, running the seam, sending after commit, and
keeping a message in the spool when the database does not answer in time."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flask import current_app

from ruta import clock, metrics, spool
from ruta.budgets import sms_budget
from ruta.conversation import Handled, InboundMessage, Route, handle_inbound
from ruta.db import UNAVAILABLE, db, deadline
from ruta.jobqueue import hand_over, schedule_drain

log = logging.getLogger(__name__)


def receive(message: InboundMessage, *, reply_inline: bool) -> Handled:
    """Run ``message`` through the flows; hand queued replies and referrals to RQ after commit."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # once, not per use
    route = Route.configured(app.config, sms_budget(), reply_inline=reply_inline)
    with metrics.inbound_step(message.channel) as step:
        with database_or_spool(lambda: _entry(message)) as kept:
            handled = handle_inbound(
                db,
                app.extensions["ruta.flows"],
                message,
                route,
                now=clock.now(),
                directory=app.extensions.get("ruta.directory"),
            )
        if kept:
            step.outcome = "spooled"
            return Handled(None, duplicate=False)  # the reply goes out once the spool is drained
        step.outcome = "duplicate" if handled.duplicate else "handled"
        step.replied_inline = bool(handled.reply) and reply_inline and not handled.duplicate
    hand_over(handled.work)
    return handled


def _entry(message: InboundMessage) -> spool.Entry:
    return spool.Entry(
        kind="inbound",
        channel=message.channel,
        provider_message_id=message.provider_message_id,
        received_at=message.received_at.isoformat(),
        sender=message.sender,
        text=message.text,
    )


@contextmanager
def database_or_spool(entry: Callable[[], spool.Entry]) -> Iterator[list[bool]]:
    """Run the block within the web's database deadline; if the database is unreachable, hung
    or locked past it, keep ``entry()`` in the spool instead and yield ``[True]`` (a redis error
    when Redis is down too propagates: the provider gets a 503 and retries or falls back)."""
    kept: list[bool] = []
    try:
        with deadline(db.timeout):
            yield kept
    except UNAVAILABLE as exc:
        item = entry()
        spool.keep(
            current_app.extensions["ruta.redis"], current_app.config["RUTA_QUEUE_PREFIX"], item
        )
        log.warning(
            "database unavailable (%s): %s from %s kept in the spool",
            type(exc).__name__,
            item.kind,
            item.channel,
        )
        schedule_drain()
        kept.append(True)
