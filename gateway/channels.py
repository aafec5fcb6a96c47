"""What every channel adapter shares: the budget, running the seam, sending after commit."""

from __future__ import annotations

from flask import current_app

from flows.context import Budget
from ruta import clock, metrics, referrals
from ruta import policy as policies
from ruta.conversation import Handled, InboundMessage, Route, handle_inbound
from ruta.db import db
from workers.jobs import hand_over


def sms_budget() -> Budget:
    return Budget("sms", int(current_app.config["RUTA_SMS_MAX_SEGMENTS"]))


def receive(message: InboundMessage, *, reply_inline: bool) -> Handled:
    """Run ``message`` through the flows; hand queued replies and referrals to RQ after commit."""
    route = Route(
        budget=sms_budget(),
        reply_inline=reply_inline,
        policy=policies.load(current_app.config.get("RUTA_POLICY_FILE")),
        outbound_channel=referrals.outbound_channel(current_app.config),
    )
    with metrics.inbound_step(message.channel) as step:
        handled = handle_inbound(
            db, current_app.extensions["ruta.flows"], message, route, now=clock.now()
        )
        step.outcome = "duplicate" if handled.duplicate else "handled"
        step.replied_inline = bool(handled.reply) and reply_inline and not handled.duplicate
    hand_over(handled.work)
    return handled
