"""The console channel: ``ruta chat`` and tests talk to the flows with no provider in between."""

from __future__ import annotations

import itertools

from flows.encoding import sms_cost
from gateway.channels import receive
from gateway.ussd import ScreenRules, answer
from ruta.contacts import normalise_number
from ruta.conversation import Handled, InboundMessage
from ruta.ussd import UssdReply, UssdRequest

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


class UssdConsole:
    """A handset dialling USSD, as Africa's Talking would relay it (cumulative input)."""

    def __init__(self, number: str, max_chars: int = 182) -> None:
        self.number = normalise_number(number)
        self.rules = ScreenRules(max_chars, transliterate=False)
        self.sessions = itertools.count(1)
        self.inputs: list[str] = []
        self.session_id = ""
        self.ended = False

    def _show(self, reply: UssdReply) -> list[str]:
        frame = "=" * 24
        status = "session ended" if reply.end else "waiting for input"
        return [
            frame,
            reply.text,
            frame,
            f"-- {len(reply.text)}/{self.rules.max_chars} chars, {status}",
        ]

    def _request(self) -> UssdReply:
        return answer(
            UssdRequest(CHANNEL, self.session_id, self.number, "*123#", text="*".join(self.inputs)),
            self.rules,
        )

    def dial(self) -> list[str]:
        self.session_id = f"console-{next(self.sessions)}"
        self.inputs = []
        reply = self._request()
        self.ended = reply.end
        return self._show(reply)

    def key(self, text: str) -> list[str]:
        if not text.strip() or self.ended:
            return self.dial()
        self.inputs.append(text.strip())
        reply = self._request()
        self.ended = reply.end
        return self._show(reply)
