"""The seam between channels and the engine: one inbound message takes one straight path.

adapter -> ``handle_inbound`` (lock the contact, dedupe, run one engine step, persist the state,
apply the events, write the replies to the message log) -> adapter reply. Sending replies that are
not inline is the caller's job once this transaction has committed.

A message is two database round trips on PostgreSQL (ruta/sql.py): the first locks the contact,
inserts the inbound message (the insert is the dedupe) and reads the conversation and the
cache counters; the engine runs on the per-process directory and flows; the second writes the
state and the reply and commits. A new number takes one more (its contact is created), and so
do the actions that reach past the directory (asking for help, subscribing, a focal point's
command), through the ORM on the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, insert, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import aliased

from flows.context import Budget
from flows.encoding import sms_cost
from flows.engine import ContactView, Engine, StepResult
from ruta import contacts, referrals, sql
from ruta import policy as policies
from ruta.contacts import ContactRow
from ruta.db import Database
from ruta.directory import DatabaseServices, DirectoryCache, end_subscriptions
from ruta.flowstore import FlowCache
from ruta.models import (
    CacheVersion,
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
from ruta.sql import Call, Prepared, Row, Tx

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

    @classmethod
    def configured(cls, config: dict[str, Any], budget: Budget, *, reply_inline: bool) -> Route:
        """The route an app's configuration gives a channel that replies within ``budget``."""
        return cls(
            budget=budget,
            reply_inline=reply_inline,
            policy=policies.load(config.get("RUTA_POLICY_FILE")),
            outbound_channel=referrals.outbound_channel(config),
        )


def handle_inbound(
    database: Database,
    flows: FlowCache,
    message: InboundMessage,
    route: Route,
    *,
    now: datetime | None = None,
    directory: DirectoryCache | None = None,
) -> Handled:
    """Run one inbound message through the flows; idempotent on the provider message id.

    A registered focal point's command (``OK R7K2P``) and a person's rating of closed help are
    answered before the flows; everything else is one engine step. ``directory`` is the
    process's cache (a throwaway one without it).
    """
    cache = directory if directory is not None else DirectoryCache()
    for attempt in range(2):
        try:
            with sql.transaction(database.bound()) as tx:
                return _handle(tx, flows, cache, message, route, now or utcnow())
        except IntegrityError:
            # The same provider id inserted by a concurrent delivery: the second pass sees it.
            if attempt:
                raise
        except DBAPIError as exc:
            if not sql.try_again(exc, attempt):
                raise
    raise AssertionError("unreachable")


# --- the conversation's state, as stored --------------------------------------------------------


def dump_state(state: dict[str, Any]) -> str:
    """The state as JSON text. orjson, not the standard library: a message writes one state
    and reads one, 21 us of the standard library's JSON against 3 (compact, UTF-8; the
    standard library reads it, and orjson reads what the standard library wrote before)."""
    return orjson.dumps(state, option=orjson.OPT_NON_STR_KEYS).decode()


def load_state(text: str) -> Any:
    return orjson.loads(text)


# --- statements, built once (ruta/sql.py) -----------------------------------------------------

_INBOUND: dict[int, Prepared] = {}
_READ: dict[int, Prepared] = {}
_CONTACT_CHANGES: dict[frozenset[str], Prepared] = {}
_COLUMNS = Message.__table__.c


def _version(name: str) -> Any:
    return select(CacheVersion.version).where(CacheVersion.name == name).scalar_subquery()


def inbound_statement(count: int) -> Prepared:
    """Log the inbound message, the dedupe: ``INSERT ... ON CONFLICT DO NOTHING RETURNING id``
    on the unique ``(channel, provider_message_id)``, one round trip for a new message instead
    of a lookup and an insert (a message without a provider id never conflicts: NULLs are
    distinct). From the contact's row, so it goes out with the lock: nothing is inserted when
    the number has no contact yet."""
    prepared = _INBOUND.get(count)
    if prepared is None:
        values = {
            "direction": bindparam("direction", type_=_COLUMNS.direction.type),
            "channel": bindparam("channel", type_=_COLUMNS.channel.type),
            "provider_message_id": bindparam("pid", type_=_COLUMNS.provider_message_id.type),
            "contact_id": Contact.id,
            "body": bindparam("body", type_=_COLUMNS.body.type),
            "status": bindparam("status", type_=_COLUMNS.status.type),
            "purpose": bindparam("purpose", type_=_COLUMNS.purpose.type),
            "attempts": bindparam("attempts", type_=_COLUMNS.attempts.type),
            "created_at": bindparam("created_at", type_=_COLUMNS.created_at.type),
            "updated_at": bindparam("updated_at", type_=_COLUMNS.updated_at.type),
        }
        rows = select(*values.values()).where(contacts.matches(count)).order_by(Contact.id).limit(1)

        def build(dialect: str) -> Any:
            insert_ = postgresql_insert if dialect == "postgresql" else sqlite_insert
            return (
                insert_(Message)
                .from_select(list(values), rows)
                .on_conflict_do_nothing(index_elements=["channel", "provider_message_id"])
                .returning(Message.id)
            )

        prepared = _INBOUND[count] = Prepared(build)
    return prepared


def read_statement(count: int) -> Prepared:
    """The cache counters and the contact's conversation on one channel (one row always)."""
    prepared = _READ.get(count)
    if prepared is None:
        one = select(literal_column("1").label("one")).subquery("one")
        joined = one.outerjoin(
            ConversationSession,
            (ConversationSession.channel == bindparam("channel"))
            & (ConversationSession.contact_id == contacts.contact_id_of(count)),
        )
        prepared = _READ[count] = Prepared(
            select(
                _version("directory"),
                _version("flows"),
                ConversationSession.id,
                ConversationSession.state,
                ConversationSession.updated_at,
            ).select_from(joined)
        )
    return prepared


_REPLAY = Prepared(
    select(Message.id, (replies := aliased(Message)).body)
    .outerjoin(replies, replies.in_reply_to_id == Message.id)
    .where(Message.channel == bindparam("channel"), Message.provider_message_id == bindparam("pid"))
    .order_by(replies.id)
)
_INSERT_STATE = Prepared(
    insert(ConversationSession).values(
        channel=bindparam("channel"),
        contact_id=bindparam("contact_id"),
        state=bindparam("state"),
        updated_at=bindparam("now"),
    )
)
_UPDATE_STATE = Prepared(
    update(ConversationSession)
    .where(ConversationSession.id == bindparam("session_id"))
    .values(state=bindparam("state"), updated_at=bindparam("now"))
)
_DELETE_STATE = Prepared(
    delete(ConversationSession).where(ConversationSession.id == bindparam("session_id"))
)
#: An outbound message of a conversation: the reply, or an SMS a USSD session asked for.
OUTBOUND_MESSAGE = Prepared(
    insert(Message)
    .values(
        direction=Direction.OUTBOUND.value,
        channel=bindparam("channel"),
        contact_id=bindparam("contact_id"),
        body=bindparam("body"),
        status=bindparam("status"),
        purpose=bindparam("purpose"),
        segments=bindparam("segments"),
        encoding=bindparam("encoding"),
        in_reply_to_id=bindparam("in_reply_to_id"),
        about_case_id=bindparam("about_case_id"),
        attempts=0,
        created_at=bindparam("created_at"),
        updated_at=bindparam("created_at"),
    )
    .returning(Message.id)
)


def contact_changes(contact_id: int, changes: dict[str, Any]) -> Call:
    columns = frozenset(changes)
    prepared = _CONTACT_CHANGES.get(columns)
    if prepared is None:
        prepared = _CONTACT_CHANGES[columns] = Prepared(
            update(Contact)
            .where(Contact.id == bindparam("contact_id"))
            .values({name: bindparam(name) for name in sorted(columns)})
        )
    return prepared(contact_id=contact_id, **changes)


# --- one message ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """What was read with the contact lock: the cache counters and the conversation (its state
    decrypted JSON text; all None when there is none on this channel)."""

    directory_version: int | None
    flows_version: int | None
    id: int | None
    state: str | None
    updated_at: datetime | None

    @classmethod
    def of(cls, rows: Sequence[Row]) -> Stored:
        return cls(*rows[0])

    def in_conversation(self, flows: FlowCache, now: datetime) -> bool:
        """The contact is in the middle of a flow on this channel (a session not yet expired)."""
        since = now - timedelta(minutes=flows.session_timeout_minutes)
        return self.updated_at is not None and self.updated_at >= since


def lock_and_read(
    tx: Tx, e164: str, hashes: dict[str, str], channel: str, now: datetime, *also: Call
) -> tuple[ContactRow, Stored, list[list[Row]]]:
    """The first round trip: lock the contact, ``also`` (statements that find it by its
    number's ``hashes``), read the conversation and the counters. A new number: create it,
    and again."""
    read = read_statement(len(hashes))(channel=channel, **hashes)
    locked, *results, stored = tx.run(contacts.lock(hashes, now), *also, read)
    if not locked:
        locked, *results, stored = tx.run(contacts.create(e164, now), *also, read)
    contact = contacts.locked(locked)
    assert contact is not None
    return contact, Stored.of(stored), results


def _handle(
    tx: Tx,
    flows: FlowCache,
    directory: DirectoryCache,
    message: InboundMessage,
    route: Route,
    now: datetime,
) -> Handled:
    hashes = contacts.hash_values(message.sender)
    logged = inbound_statement(len(hashes))(
        direction=Direction.INBOUND.value,
        channel=message.channel,
        pid=message.provider_message_id,
        body=message.text,
        status=MessageStatus.RECEIVED.value,
        purpose=MessagePurpose.REPLY.value,
        attempts=0,
        created_at=message.received_at,
        updated_at=utcnow(),
        **hashes,
    )
    contact, stored, (inserted,) = lock_and_read(
        tx, message.sender, hashes, message.channel, now, logged
    )
    if not inserted:  # this provider id is already in the log: a redelivery
        return _replay(tx, message)
    inbound_id = inserted[0][0]
    directory.seen(stored.directory_version)
    engine = flows.engine_at(stored.flows_version, tx.session)

    special: tuple[str, Work] | None = None
    about_case_id: int | None = None
    if not contact.opted_out:
        command = (
            referrals.handle_command(
                tx.session(),
                contact,
                message.text,
                now=now,
                channel=route.outbound_channel,
                in_conversation=lambda: stored.in_conversation(flows, now),
            )
            if referrals.is_command(message.text)
            else None
        )
        if command is not None:
            special, about_case_id = (command.text, command.work), command.about_case_id
        elif referrals.may_be_rating(contact, message.text, now):
            rating = referrals.handle_rating(tx.session(), contact, message.text, now=now)
            special = (rating, Work()) if rating else None
    result = None
    reply: str | None
    writes: list[Call] = []
    if special is not None:
        reply, work = special
        purpose = MessagePurpose.REPLY
    else:
        result, work, writes = step_conversation(
            tx, engine, directory, message, route, contact, stored, now
        )
        reply = result.text or None
        purpose = (
            MessagePurpose.OPT_OUT_CONFIRMATION
            if result.has("contact_opted_out") or result.has("contact_erase_requested")
            else MessagePurpose.REPLY
        )
    if reply:
        cost = sms_cost(reply)
        writes.append(
            OUTBOUND_MESSAGE(
                channel=message.channel,
                contact_id=contact.id,
                body=reply,
                status=(
                    MessageStatus.REPLIED_INLINE if route.reply_inline else MessageStatus.QUEUED
                ).value,
                purpose=purpose.value,
                segments=cost.segments,
                encoding=cost.encoding,
                in_reply_to_id=inbound_id,
                about_case_id=about_case_id,
                created_at=utcnow(),
            )
        )
    results = tx.run(*writes, commit=True)
    if reply and not route.reply_inline:
        work.message_ids.insert(0, results[-1][0][0])
    log.info(
        "inbound handled: channel=%s message=%s contact=%s events=%s",
        message.channel,
        inbound_id,
        contact.id,
        ",".join(e.kind for e in result.events) if result else "command",
    )
    return Handled(reply, work, result=result)


def step_conversation(
    tx: Tx,
    engine: Engine,
    directory: DirectoryCache,
    message: InboundMessage,
    route: Route,
    contact: ContactRow,
    stored: Stored,
    now: datetime,
    *,
    mode: str = "step",
) -> tuple[StepResult, Work, list[Call]]:
    """One engine step; its events applied to ``contact``. Returns the statements that save
    the state and the contact's changes, for the caller's last round trip.

    ``mode`` "fresh" starts over whatever was stored; "redisplay" shows the waiting question again
    (a USSD session resumed after a drop). USSD is dialled by the person, so an opt-out (which
    stops messages *to* them) does not silence it.
    """
    state = load_state(stored.state) if stored.state is not None else None
    if mode == "fresh":
        state = None
    services = DatabaseServices(
        tx.session,
        channel=message.channel,
        contact_id=contact.id,
        number=message.sender,
        now=now,
        policy=route.policy,
        cache=directory,
        tx=tx,
    )
    view = ContactView(
        language=contact.language, opted_out=contact.opted_out and route.budget.channel == "sms"
    )
    if mode == "redisplay" and state is not None:
        result = engine.redisplay(state, view, services=services, budget=route.budget, now=now)
    else:
        result = engine.step(
            state, view, message.text, services=services, budget=route.budget, now=now, owned=True
        )
    changes: dict[str, Any] = {}
    for event in result.events:
        if event.kind in ("contact_opted_out", "contact_erase_requested"):
            changes.update(opted_out=True, opted_out_at=now)
            # STOP ends every alert subscription too; START does not bring them back.
            end_subscriptions(tx.session(), contact.id, now)
            if event.kind == "contact_erase_requested":
                changes["erase_requested_at"] = now  # the sweeper erases them (ruta/erasure.py)
        elif event.kind == "contact_opted_in":
            changes.update(opted_out=False, opted_out_at=None)
        elif event.kind == "contact_language_changed":
            changes["language"] = event.data["language"]
    language = changes.get("language", contact.language)
    if result.state and language is None and result.state.get("lang") is not None:
        changes["language"] = result.state["lang"]
    contact.language = changes.get("language", contact.language)
    contact.opted_out = changes.get("opted_out", contact.opted_out)
    writes: list[Call] = []
    if result.state is None:
        if stored.id is not None:
            writes.append(_DELETE_STATE(session_id=stored.id))
    elif stored.id is None:
        writes.append(
            _INSERT_STATE(
                channel=message.channel,
                contact_id=contact.id,
                state=dump_state(result.state),
                now=now,
            )
        )
    else:
        writes.append(_UPDATE_STATE(session_id=stored.id, state=dump_state(result.state), now=now))
    if changes:
        writes.append(contact_changes(contact.id, changes))
    return result, services.work, writes


def _replay(tx: Tx, message: InboundMessage) -> Handled:
    """A redelivered message: the same reply as the first time, nothing advanced or queued."""
    (rows,) = tx.run(_REPLAY(channel=message.channel, pid=message.provider_message_id), commit=True)
    log.info("duplicate delivery ignored: channel=%s message=%s", message.channel, rows[0][0])
    return Handled("\n".join(body for _, body in rows if body) or None, duplicate=True)
