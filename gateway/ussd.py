"""What every USSD adapter shares: the route to the seam, screen limits, transliteration.

An adapter module turns its provider's request into a ``UssdRequest`` and a ``UssdReply`` into
its provider's answer, and registers its blueprint in ``ADAPTERS``; adding a provider is adding
one module and one line there.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from gateway.channels import ussd_budget
from ruta import clock, referrals, ussd
from ruta import policy as policies
from ruta.contacts import InvalidNumber, normalise_number
from ruta.conversation import Route
from ruta.db import db
from workers.jobs import hand_over

#: Longest session id kept.
MAX_SESSION_ID = 100


class BadUssdRequest(ValueError):
    """A provider request that names no usable session; answered 400."""


@dataclass(frozen=True)
class ScreenRules:
    max_chars: int
    transliterate: bool


def number(raw: str) -> str:
    """E.164 from what aggregators send (``+50688001122`` or ``50688001122``)."""
    raw = raw.strip()
    try:
        return normalise_number(raw if raw.startswith("+") else f"+{raw}")
    except InvalidNumber:
        raise BadUssdRequest("not a phone number") from None


def session_id(raw: str | None) -> str:
    if not raw or len(raw) > MAX_SESSION_ID:
        raise BadUssdRequest("a session id is required")
    return raw


def answer(request: ussd.UssdRequest, rules: ScreenRules) -> ussd.UssdReply:
    """Compute the screen inside the request (no enqueue-and-wait), then hand work to RQ."""
    route = Route(
        budget=ussd_budget(rules.max_chars, request.service_code),
        reply_inline=True,
        policy=policies.load(current_app.config.get("RUTA_POLICY_FILE")),
        outbound_channel=referrals.outbound_channel(current_app.config),
    )
    reply, work = ussd.handle(
        db, current_app.extensions["ruta.flows"], request, route, now=clock.now()
    )
    hand_over(work)
    text = ussd.transliterate(reply.text) if rules.transliterate else reply.text
    return ussd.UssdReply(ussd.fit(text, rules.max_chars), reply.end)


def ended(provider: str, raw_session_id: str | None, *, completed: bool) -> None:
    ussd.session_ended(
        db, provider, session_id(raw_session_id), completed=completed, now=clock.now()
    )
