"""The console channel: ``ruta chat`` and tests talk to the flows with no provider in between."""

from __future__ import annotations

from flows.encoding import sms_cost
from gateway.channels import receive
from ruta.contacts import normalise_number
from ruta.conversation import Handled, InboundMessage

CHANNEL = "console"


def deliver(number: str, text: str) -> Handled:
    """Handle ``text`` from ``number`` as an SMS would be, replying inline."""
    return receive(InboundMessage(CHANNEL, normalise_number(number), text), reply_inline=True)


def send(number: str, text: str) -> list[str]:
    """The reply as a handset would show it, then its cost in segments and encoding."""
    handled = deliver(number, text)
    if not handled.reply:
        return ["(no reply)"]
    cost = sms_cost(handled.reply)
    return [
        handled.reply,
        f"-- {len(handled.reply)} chars, {cost.encoding}, {cost.segments} SMS segment(s)",
    ]
