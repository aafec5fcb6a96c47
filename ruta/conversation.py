"""The seam between channels and the engine: one inbound message takes one straight path.

adapter -> ``handle_inbound`` (lock the contact, dedupe, run one engine step, persist the state,
apply the events, write the replies to the message log) -> adapter reply. Sending replies that are
not inline is the caller's job once this transaction has committed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from flows.context import Budget
from flows.encoding import sms_cost
from flows.engine import ContactView, StepResult
from ruta import contacts, referrals
from ruta.db import Database, past_deadline
from ruta.directory import DatabaseServices, end_subscriptions
from ruta.flowstore import FlowCache
from ruta.models import (
    Contact,
    ConversationSession,
    Direction,
    Message,
    MessagePurpose,
    MessageStatus,
    utcnow,
)
from ruta.policy import Policy
from ruta.referrals import Work

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InboundMessage:
    """A message from a person, whatever the provider. ``sender`` is E.164."""

    channel: str
    sender: str
    text: str
    provider_message_id: str | None = None
    received_at: datetime = field(default_factory=utcnow)


@dataclass
class Handled:
    """What the adapter needs to answer: the reply text, and the work to hand to RQ."""

    reply: str | None
    work: Work = field(default_factory=Work)
    duplicate: bool = False
    result: StepResult | None = None


@dataclass(frozen=True)
class Route:
    """How the channel at hand replies, and what referrals need to know."""

    budget: Budget
    reply_inline: bool
    policy: Policy
    outbound_channel: str


def handle_inbound(
    database: Database,
    flows: FlowCache,
    message: InboundMessage,
    route: Route,
    *,
    now: datetime | None = None,
) -> Handled:
    """Run one inbound message through the flows; idempotent on the provider message id.

    A registered focal point's command (``OK R7K2P``) and a person's rating of closed help are
    answered before the flows; everything else is one engine step.
    """
    for attempt in range(2):
        try:
            with database.transaction() as session:
                return _handle(session, flows, message, route, now or utcnow())
        except IntegrityError:
            # The same provider id inserted by a concurrent delivery: the second pass sees it.
            if attempt:
                raise
        except DBAPIError as exc:
            # A pooled connection the database dropped (a restart): the pool has let go of it
            # and every one as old; the second pass connects afresh. Anything else propagates.
            if attempt or not exc.connection_invalidated or past_deadline():
                raise
    raise AssertionError("unreachable")


def _handle(
    session: Session, flows: FlowCache, message: InboundMessage, route: Route, now: datetime
) -> Handled:
    contact = contacts.lock_contact(session, message.sender, seen_at=now)
    inbound_id = _insert_inbound(session, message, contact.id)
    if inbound_id is None:  # this provider id is already in the log: a redelivery
        earlier = session.scalar(
            select(Message).where(
                Message.channel == message.channel,
                Message.provider_message_id == message.provider_message_id,
            )
        )
        assert earlier is not None
        return _replay(session, earlier)

    special: tuple[str, Work] | None = None
    about_case_id: int | None = None
    if not contact.opted_out:
        command = referrals.handle_command(
            session,
            contact,
            message.text,
            now=now,
            channel=route.outbound_channel,
            in_conversation=lambda: _in_conversation(session, flows, contact, message.channel, now),
        )
        if command is not None:
            special, about_case_id = (command.text, command.work), command.about_case_id
        else:
            rating = referrals.handle_rating(session, contact, message.text, now=now)
            special = (rating, Work()) if rating else None
    result = None
    reply: str | None
    if special is not None:
        reply, work = special
        purpose = MessagePurpose.REPLY
    else:
        result, work = step_conversation(session, flows, message, route, contact, now)
        reply = result.text or None
        purpose = (
            MessagePurpose.OPT_OUT_CONFIRMATION
            if result.has("contact_opted_out") or result.has("contact_erase_requested")
            else MessagePurpose.REPLY
        )
    if reply:
        cost = sms_cost(reply)
        outbound = Message(
            direction=Direction.OUTBOUND.value,
            channel=message.channel,
            contact_id=contact.id,
            body=reply,
            status=(
                MessageStatus.REPLIED_INLINE if route.reply_inline else MessageStatus.QUEUED
            ).value,
            segments=cost.segments,
            encoding=cost.encoding,
            in_reply_to_id=inbound_id,
            purpose=purpose.value,
            about_case_id=about_case_id,
        )
        session.add(outbound)
        session.flush()
        if not route.reply_inline:
            work.message_ids.insert(0, outbound.id)
    log.info(
        "inbound handled: channel=%s message=%s contact=%s events=%s",
        message.channel,
        inbound_id,
        contact.id,
        ",".join(e.kind for e in result.events) if result else "command",
    )
    return Handled(reply, work, result=result)


def _insert_inbound(session: Session, message: InboundMessage, contact_id: int) -> int | None:
    """Log the inbound message and return its id, or None if its provider id is already
    logged: the insert is the dedupe (``ON CONFLICT DO NOTHING`` on the unique
    ``(channel, provider_message_id)``), one round trip for a new message instead of a lookup
    and an insert. A message without a provider id never conflicts (NULLs are distinct)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(Message)
        .values(
            direction=Direction.INBOUND.value,
            channel=message.channel,
            provider_message_id=message.provider_message_id,
            contact_id=contact_id,
            body=message.text,
            status=MessageStatus.RECEIVED.value,
            created_at=message.received_at,
        )
        .on_conflict_do_nothing(index_elements=["channel", "provider_message_id"])
        .returning(Message.id)
    )
    return session.scalar(statement)


def _in_conversation(
    session: Session, flows: FlowCache, contact: Contact, channel: str, now: datetime
) -> bool:
    """The contact is in the middle of a flow on this channel (a session not yet expired)."""
    since = now - timedelta(minutes=flows.session_timeout_minutes)
    return (
        session.scalar(
            select(ConversationSession.id).where(
                ConversationSession.channel == channel,
                ConversationSession.contact_id == contact.id,
                ConversationSession.updated_at >= since,
            )
        )
        is not None
    )


def step_conversation(
    session: Session,
    flows: FlowCache,
    message: InboundMessage,
    route: Route,
    contact: Contact,
    now: datetime,
    *,
    mode: str = "step",
) -> tuple[StepResult, Work]:
    """One engine step; its events applied to the contact, its state saved.

    ``mode`` "fresh" starts over whatever was stored; "redisplay" shows the waiting question again
    (a USSD session resumed after a drop). USSD is dialled by the person, so an opt-out (which
    stops messages *to* them) does not silence it.
    """
    conversation = session.scalar(
        select(ConversationSession).where(
            ConversationSession.channel == message.channel,
            ConversationSession.contact_id == contact.id,
        )
    )
    state = json.loads(conversation.state) if conversation is not None else None
    if mode == "fresh":
        state = None
    services = DatabaseServices(
        session,
        channel=message.channel,
        contact_id=contact.id,
        number=message.sender,
        now=now,
        policy=route.policy,
    )
    view = ContactView(
        language=contact.language, opted_out=contact.opted_out and route.budget.channel == "sms"
    )
    engine = flows.engine(session)
    if mode == "redisplay" and state is not None:
        result = engine.redisplay(state, view, services=services, budget=route.budget, now=now)
    else:
        result = engine.step(
            state, view, message.text, services=services, budget=route.budget, now=now
        )
    for event in result.events:
        if event.kind in ("contact_opted_out", "contact_erase_requested"):
            contact.opted_out, contact.opted_out_at = True, now
            # STOP ends every alert subscription too; START does not bring them back.
            end_subscriptions(session, contact.id, now)
            if event.kind == "contact_erase_requested":
                contact.erase_requested_at = now  # the sweeper erases them (ruta/erasure.py)
        elif event.kind == "contact_opted_in":
            contact.opted_out, contact.opted_out_at = False, None
        elif event.kind == "contact_language_changed":
            contact.language = event.data["language"]
    if result.state is None:
        if conversation is not None:
            session.delete(conversation)
    elif conversation is None:
        session.add(
            ConversationSession(
                channel=message.channel,
                contact_id=contact.id,
                state=json.dumps(result.state),
                updated_at=now,
            )
        )
    else:
        conversation.state = json.dumps(result.state)
        conversation.updated_at = now
    if result.state and contact.language is None:
        contact.language = result.state.get("lang")
    return result, services.work


def _replay(session: Session, earlier: Message) -> Handled:
    """A redelivered message: the same reply as the first time, nothing advanced or queued."""
    replies = session.scalars(
        select(Message.body).where(Message.in_reply_to_id == earlier.id).order_by(Message.id)
    ).all()
    log.info("duplicate delivery ignored: channel=%s message=%s", earlier.channel, earlier.id)
    return Handled("\n".join(r for r in replies if r) or None, duplicate=True)
