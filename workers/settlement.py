"""Settling sends whose outcome is unknown, for broadcasts and for single messages alike.

A worker killed during the provider call, or a provider answering after the client's timeout,
leaves a claim in "sending": the provider may have the message or not. Sending it again blindly
can send it twice; giving up can lose it. Twilio can be asked: its message list, filtered by
To and From, holds a message with the same body created since the claim if it went out. Africa's
Talking cannot be asked; its delivery reports, when the account sends them, prove a message
went out and settle the claim as they arrive (gateway/delivery.py). What neither settles is
sent again.

``ask_twilio`` is the question, shared by ``workers.broadcast_jobs.resume_broadcasts`` and
``resume_messages`` (the sweeper's part for alerts, replies, notices and answers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, func, select, update

from providers.senders import SendError, TwilioSender
from ruta.db import db
from ruta.models import Contact, Message, MessageStatus

log = logging.getLogger(__name__)

#: Twilio's clock against ours, when asking whether it has a message sent since a claim.
CLOCK_SKEW = timedelta(minutes=1)
#: Claims settled in one sweep: each may cost Twilio a request.
SETTLE_AT_ONCE = 50


@dataclass(frozen=True)
class InFlight:
    """One message that may have reached the provider: ``key`` is the caller's id for it;
    ``skip`` are sids already recorded for other messages (never taken for this one)."""

    key: int
    to: str
    body: str
    claimed_at: datetime
    skip: frozenset[str] = frozenset()


@dataclass
class Answers:
    """``sent``: key -> sid of those Twilio has; ``unknown``: keys it could not be asked about
    (left claimed until the next sweep, so nothing is sent twice)."""

    sent: dict[int, str] = field(default_factory=dict)
    unknown: set[int] = field(default_factory=set)


def ask_twilio(sender: Callable[[], TwilioSender], in_flight: Sequence[InFlight]) -> Answers:
    """Ask Twilio, one message list request each, which of ``in_flight`` went out."""
    answers = Answers()
    for index, item in enumerate(in_flight):
        try:
            sid = sender().find_sent(
                item.to, item.body, item.claimed_at - CLOCK_SKEW, skip=item.skip
            )
        except (SendError, ValueError):  # ValueError: this worker has no Twilio settings
            # Twilio cannot be asked now: the rest would only wait for it in turn.
            answers.unknown.update(i.key for i in in_flight[index:])
            break
        if sid is not None:
            answers.sent[item.key] = sid
    return answers


@dataclass
class Resumed:
    """What ``resume_messages`` did: ``found_sent`` settled as sent, ``resend`` put back to
    queued (to hand over), ``gave_up`` failed after their last attempt."""

    found_sent: int = 0
    resend: list[int] = field(default_factory=list)
    gave_up: list[int] = field(default_factory=list)


def _claimed_at() -> Any:
    # Rows claimed before migration 0013 have no claim time; their last change is the claim.
    return func.coalesce(Message.claimed_at, Message.updated_at)


def _others_sent_since(session: Any, message: Message, since: datetime) -> frozenset[str]:
    """Sids of the contact's other Twilio messages claimed since ``since``: a duplicate body
    found in Twilio's list may be one of those, not this one."""
    return frozenset(
        session.scalars(
            select(Message.provider_message_id).where(
                Message.contact_id == message.contact_id,
                Message.channel == "twilio",
                Message.id != message.id,
                Message.provider_message_id.is_not(None),
                Message.claimed_at >= since,
            )
        )
    )


def resume_messages(
    twilio: Callable[[], TwilioSender], *, now: datetime, cutoff: datetime, max_attempts: int
) -> Resumed:
    """Settle outbound messages claimed before ``cutoff`` and still "sending" (their worker
    died, or the provider did not answer in time). Twilio has it: sent. Twilio cannot be
    asked: left as it is. Otherwise (Twilio has none, or Africa's Talking sent no report) it
    goes back to queued, unless its attempts are spent (failed) or its text was erased
    (suppressed)."""
    with db.transaction() as session:
        stuck = list(
            session.execute(
                select(Message, Contact.phone, _claimed_at())
                .join(Contact, Contact.id == Message.contact_id)
                .where(Message.status == MessageStatus.SENDING.value, _claimed_at() < cutoff)
                .order_by(_claimed_at())
                .limit(SETTLE_AT_ONCE)
            )
        )
        in_flight = [
            InFlight(
                message.id,
                phone,
                message.body or "",
                claimed_at,
                _others_sent_since(session, message, claimed_at - CLOCK_SKEW),
            )
            for message, phone, claimed_at in stuck
            if message.channel == "twilio" and message.body
        ]
        facts = [(m.id, claimed_at, m.attempts, bool(m.body)) for m, _, claimed_at in stuck]
    answers = ask_twilio(twilio, in_flight) if in_flight else Answers()
    resumed = Resumed()
    with db.transaction() as session:
        for message_id, claimed_at, attempts, has_body in facts:
            if message_id in answers.unknown:
                continue
            values: dict[str, Any]
            if message_id in answers.sent:
                values = {
                    "status": MessageStatus.SENT.value,
                    "provider_message_id": answers.sent[message_id],
                    "error_code": None,
                }
            elif not has_body:
                values = {"status": MessageStatus.SUPPRESSED.value}
            elif attempts >= max_attempts:
                values = {"status": MessageStatus.FAILED.value, "error_code": "no_answer"}
            else:
                values = {"status": MessageStatus.QUEUED.value}
            # Only the same claim: another sweeper (or a report) may have settled it meanwhile.
            done: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                update(Message)
                .where(
                    Message.id == message_id,
                    Message.status == MessageStatus.SENDING.value,
                    _claimed_at() == claimed_at,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if not done.rowcount:
                continue
            status = values["status"]
            if status == MessageStatus.SENT.value:
                resumed.found_sent += 1
            elif status == MessageStatus.QUEUED.value:
                resumed.resend.append(message_id)
            elif status == MessageStatus.FAILED.value:
                resumed.gave_up.append(message_id)
    if answers.unknown:
        log.warning("%s sends left unsettled: Twilio cannot be asked", len(answers.unknown))
    return resumed
