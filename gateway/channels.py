"""What every channel adapter shares: the budget, running the seam, sending after commit."""

from __future__ import annotations

from flask import current_app

from flows.context import Budget
from ruta.conversation import Handled, InboundMessage, handle_inbound
from ruta.db import db
from ruta.models import utcnow
from workers.jobs import send_message
from workers.queues import HIGH, SEND_RETRY, enqueue


def sms_budget() -> Budget:
    return Budget("sms", int(current_app.config["RUTA_SMS_MAX_SEGMENTS"]))


def receive(message: InboundMessage, *, reply_inline: bool) -> Handled:
    """Run ``message`` through the flows; queue replies that are not inline after commit."""
    handled = handle_inbound(
        db,
        current_app.extensions["ruta.flows"],
        message,
        budget=sms_budget(),
        reply_inline=reply_inline,
        now=current_app.extensions.get("ruta.clock", utcnow)(),
    )
    for message_id in handled.outbound_ids:
        enqueue(
            current_app.extensions["ruta.redis"],
            current_app.config["RUTA_QUEUE_PREFIX"],
            send_message,
            message_id,
            priority=HIGH,  # a person is waiting on the other end
            retry=SEND_RETRY,
        )
    return handled
