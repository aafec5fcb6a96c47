"""What every channel adapter shares: the budget, running the seam, sending after commit."""

from __future__ import annotations

from collections.abc import Mapping

from flask import current_app

from flows.context import PAGE_CHARS, Budget
from ruta import clock, referrals
from ruta import policy as policies
from ruta.contacts import InvalidNumber, normalise_number
from ruta.conversation import Handled, InboundMessage, Route, handle_inbound
from ruta.db import db
from workers.jobs import hand_over

#: Longest provider message id we store (Twilio SIDs are 34 characters).
MAX_PROVIDER_ID = 64


class BadInbound(ValueError):
    """A provider request that names no usable message; answered 400."""


def inbound_fields(form: Mapping[str, str], *, sender: str, message_id: str) -> tuple[str, str]:
    """The sender as E.164 and the provider message id, or BadInbound naming the bad field."""
    provider_id = form.get(message_id, "")
    if not provider_id or len(provider_id) > MAX_PROVIDER_ID:
        raise BadInbound(f"{message_id} is required")
    try:
        return normalise_number(form.get(sender, "")), provider_id
    except InvalidNumber:
        raise BadInbound(f"{sender} is not a phone number") from None


def page_chars() -> int:
    """Menu pages are laid out alike on SMS and USSD, to the smallest USSD screen configured,
    so an option has the same number on both channels."""
    config = current_app.config
    return min(PAGE_CHARS, int(config["AT_USSD_MAX_CHARS"]), int(config["USSD_JSON_MAX_CHARS"]))


def sms_budget() -> Budget:
    config = current_app.config
    return Budget(
        "sms",
        int(config["RUTA_SMS_MAX_SEGMENTS"]),
        page_chars=page_chars(),
        plain_labels=bool(config["RUTA_SMS_TRANSLITERATE"]),
    )


def ussd_budget(max_chars: int, service_code: str = "") -> Budget:
    """A USSD screen; end screens name the code to dial again (the one the person dialled
    when ``RUTA_USSD_CODE`` is not set)."""
    code = current_app.config.get("RUTA_USSD_CODE") or service_code
    return Budget.ussd(max_chars, dial_code=code, page_chars=page_chars())


def receive(message: InboundMessage, *, reply_inline: bool) -> Handled:
    """Run ``message`` through the flows; hand queued replies and referrals to RQ after commit."""
    route = Route(
        budget=sms_budget(),
        reply_inline=reply_inline,
        policy=policies.load(current_app.config.get("RUTA_POLICY_FILE")),
        outbound_channel=referrals.outbound_channel(current_app.config),
    )
    handled = handle_inbound(
        db, current_app.extensions["ruta.flows"], message, route, now=clock.now()
    )
    hand_over(handled.work)
    return handled
