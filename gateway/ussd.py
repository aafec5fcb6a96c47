"""What every USSD adapter shares: the route to the seam, screen limits, transliteration.

An adapter module turns its provider's request into a ``UssdRequest`` and a ``UssdReply`` into
its provider's answer, and registers its blueprint in ``ADAPTERS``; adding a provider is adding
one module and one line there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import current_app

from gateway import fields
from ruta import clock, metrics, ussd
from ruta.budgets import ussd_budget
from ruta.conversation import Route
from ruta.db import UNAVAILABLE, db, deadline
from ruta.jobqueue import hand_over

log = logging.getLogger(__name__)
#: The screen while the database is away (neutral, no keyword to text: the person dials again).
UNAVAILABLE_SCREEN = "Ruta: servicio no disponible por un momento. Marque de nuevo en unos minutos."


@dataclass(frozen=True)
class ScreenRules:
    max_chars: int
    transliterate: bool


def number(raw: Any, name: str) -> str:
    """E.164 from what aggregators send (``+50688001122`` or ``50688001122``)."""
    return fields.phone_number(raw, name, plus=False)


def session_id(raw: Any, name: str) -> str:
    return fields.shaped(raw, fields.SESSION_ID, name)


def service_code(raw: Any, name: str) -> str:
    return fields.optional(raw, fields.SERVICE_CODE, name) or ""


def inputs(raw: Any, name: str) -> str:
    return fields.text(raw, name, max_chars=fields.MAX_USSD_TEXT)


def answer(request: ussd.UssdRequest, rules: ScreenRules) -> ussd.UssdReply:
    """Compute the screen inside the request (no enqueue-and-wait), then hand work to RQ."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # once, not per use
    budget = ussd_budget(rules.max_chars, request.service_code)
    route = Route.configured(app.config, budget, reply_inline=True)
    with metrics.inbound_step(f"ussd-{request.provider}") as step:
        try:
            with deadline(db.timeout):
                reply, work = ussd.handle(
                    db,
                    app.extensions["ruta.flows"],
                    request,
                    route,
                    now=clock.now(),
                    directory=app.extensions.get("ruta.directory"),
                )
            step.outcome = "handled"
        except UNAVAILABLE as exc:
            # A screen cannot wait for the database: say so plainly and end; nothing was stored,
            # so dialling again later starts afresh.
            log.warning("database unavailable (%s): USSD session ended", type(exc).__name__)
            reply, work = ussd.UssdReply(UNAVAILABLE_SCREEN, True), None
            step.outcome = "unavailable"
    if work is not None:
        hand_over(work)
    text = ussd.transliterate(reply.text) if rules.transliterate else reply.text
    return ussd.UssdReply(ussd.fit(text, rules.max_chars), reply.end)


def ended(provider: str, session: str, *, completed: bool) -> None:
    try:
        with deadline(db.timeout):
            ussd.session_ended(db, provider, session, completed=completed, now=clock.now())
    except UNAVAILABLE as exc:
        # Only bookkeeping (was the session finished?): a resumed dial then offers to continue.
        log.warning("database unavailable (%s): USSD end not recorded", type(exc).__name__)
