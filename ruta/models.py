"""SQLAlchemy models: contacts, the message log, conversation sessions, flow versions, the
service directory (Open Referral HSDS 3 lines) and cases.

Personal data (numbers, message bodies, free text, session variables) is stored in
``EncryptedText`` columns; contacts are found through ``phone_hash``, a keyed hash.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from ruta import crypto


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class EncryptedText(TypeDecorator[str]):
    """Text encrypted with the installed vault; the database only ever sees sealed values."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return crypto.current().encrypt(value) if value is not None else None

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return crypto.current().decrypt(value) if value is not None else None


#: ``Column.info`` key marking a lookup hash: its value names the encrypted column it hashes, so
#: ``ruta keys rotate`` finds every hash from the metadata and recomputes it from that column.
LOOKUP_HASH_OF = "lookup_hash_of"


class Base(DeclarativeBase):
    pass


class Direction(str, Enum):
    INBOUND = "in"
    OUTBOUND = "out"


class MessageStatus(str, Enum):
    RECEIVED = "received"
    QUEUED = "queued"  # written, waiting for a worker
    SENDING = "sending"  # a worker has claimed it and is calling the provider
    SENT = "sent"  # the provider accepted it
    DELIVERED = "delivered"
    FAILED = "failed"
    REPLIED_INLINE = "replied"  # answered inside the webhook response (TwiML)
    SUPPRESSED = "suppressed"  # not sent: the contact opted out


class MessagePurpose(str, Enum):
    REPLY = "reply"
    OPT_OUT_CONFIRMATION = "opt_out_confirmation"  # the one message sent after STOP
    ALERT = "alert"  # a referral alert to a focal point
    NOTICE = "notice"  # a case update to the person (accepted, closed)
    ANSWER = "answer"  # a person's answer to their question, from the admin
    BROADCAST_TEST = "broadcast_test"  # a broadcast sent to its sender's own phone only


class ServiceStatus(str, Enum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    TEMPORARILY_CLOSED = "temporarily closed"


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    phone_hash: Mapped[str] = mapped_column(String(64), unique=True, info={LOOKUP_HASH_OF: "phone"})
    phone: Mapped[str] = mapped_column(EncryptedText)
    language: Mapped[str | None] = mapped_column(String(8))
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The person sent BORRAR: the sweeper erases them once their confirmation is out.
    erase_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When the person was last asked to rate closed help: only then is a bare 1, 2 or 3 looked
    #: up as a rating (ruta.referrals.handle_rating), so other digits cost no query of cases.
    rating_asked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Message(Base):
    """One SMS in or out. ``(channel, provider_message_id)`` is unique: redeliveries are no-ops."""

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("channel", "provider_message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    direction: Mapped[str] = mapped_column(String(3))
    channel: Mapped[str] = mapped_column(String(32))
    provider_message_id: Mapped[str | None] = mapped_column(String(64))
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    body: Mapped[str | None] = mapped_column(EncryptedText)
    status: Mapped[str] = mapped_column(String(16), index=True)
    purpose: Mapped[str] = mapped_column(String(24), default=MessagePurpose.REPLY.value)
    segments: Mapped[int | None] = mapped_column(Integer)
    encoding: Mapped[str | None] = mapped_column(String(8))
    error_code: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    in_reply_to_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )
    #: The case whose person this message describes to someone else (a focal point's INFO
    #: reply: safe times, maybe the number), so erasing or anonymising the case blanks it too.
    about_case_id: Mapped[int | None] = mapped_column(
        ForeignKey("cases.id", ondelete="SET NULL"), index=True
    )
    #: The broadcast a test send tried out (purpose "broadcast_test"): kept out of the
    #: broadcast's ledger, so never in its figures or its audience.
    broadcast_id: Mapped[int | None] = mapped_column(
        ForeignKey("broadcasts.id", ondelete="CASCADE"), index=True
    )
    #: When a worker last claimed it to call the provider: a claim still "sending" long after
    #: is settled by asking the provider for messages since then (workers/settlement.py).
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ConversationSession(Base):
    """Where one contact is in a flow on one channel; ``state`` is encrypted JSON."""

    __tablename__ = "conversation_sessions"
    __table_args__ = (UniqueConstraint("channel", "contact_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(EncryptedText)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UssdSession(Base):
    """One USSD session at one provider: the input path and last screen are kept here, never
    taken from the provider's history, so a repeated request redraws and advances nothing."""

    __tablename__ = "ussd_sessions"
    __table_args__ = (UniqueConstraint("provider", "session_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    session_id: Mapped[str] = mapped_column(String(100))
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    last_input: Mapped[str | None] = mapped_column(EncryptedText)
    last_sequence: Mapped[int | None] = mapped_column(Integer)
    last_screen: Mapped[str | None] = mapped_column(EncryptedText)
    last_end: Mapped[bool] = mapped_column(Boolean, default=False)
    pending: Mapped[str | None] = mapped_column(String(16))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_normally: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class CacheVersion(Base):
    """A counter for each set of tables web processes cache (``directory``, ``flows``): every
    write to one of those tables bumps it, by a trigger, in the writing transaction (migration
    0011), so a process that reads a newer number knows its copy is stale."""

    __tablename__ = "cache_versions"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class FlowVersion(Base):
    """A published, immutable version of one flow document."""

    __tablename__ = "flow_versions"
    __table_args__ = (UniqueConstraint("flow_key", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    flow_key: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_by: Mapped[str] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)


class Municipality(Base):
    __tablename__ = "municipalities"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    country: Mapped[str] = mapped_column(String(2), index=True)
    admin_area: Mapped[str | None] = mapped_column(String(120))


class Category(Base):
    """A term of the one taxonomy (ruta/taxonomy.yaml): a kind of help a person asks for and a
    kind of service in the directory. ``names`` maps language code to a neutral label."""

    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    names: Mapped[dict[str, str]] = mapped_column(JSON)
    position: Mapped[int] = mapped_column(Integer, default=0)
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Offered by the ask_help flow's "kind" menu.
    kind_of_help: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Offered in the find-services and alerts menus.
    listed: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(200))


class Service(Base):
    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(24), default=ServiceStatus.ACTIVE.value)
    alert_text: Mapped[str | None] = mapped_column(String(320))
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)

    organization: Mapped[Organization] = relationship()
    category: Mapped[Category] = relationship()
    phones: Mapped[list[Phone]] = relationship(cascade="all, delete-orphan", order_by="Phone.id")
    schedules: Mapped[list[Schedule]] = relationship(
        cascade="all, delete-orphan", order_by="(Schedule.weekday, Schedule.opens_at)"
    )
    locations: Mapped[list[ServiceAtLocation]] = relationship(cascade="all, delete-orphan")


class Location(Base):
    __tablename__ = "locations"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(300))

    municipality: Mapped[Municipality] = relationship()


class ServiceAtLocation(Base):
    __tablename__ = "service_at_locations"
    __table_args__ = (UniqueConstraint("service_id", "location_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id", ondelete="CASCADE"))

    location: Mapped[Location] = relationship()


class Phone(Base):
    __tablename__ = "phones"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(40))
    description: Mapped[str | None] = mapped_column(String(120))


class Schedule(Base):
    """Weekly opening hours (HSDS ``schedule``): ISO weekday 1-7, local HH:MM times."""

    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    weekday: Mapped[int] = mapped_column(Integer)
    opens_at: Mapped[str] = mapped_column(String(5))
    closes_at: Mapped[str] = mapped_column(String(5))


class CaseStatus(str, Enum):
    NEW = "new"  # stored; not forwarded (no consent yet, or no routing chain)
    FORWARDED = "forwarded"  # a focal point was alerted; waiting for acceptance
    ACCEPTED = "accepted"
    CLOSED = "closed"


OPEN_CASE_STATUSES = (CaseStatus.NEW.value, CaseStatus.FORWARDED.value, CaseStatus.ACCEPTED.value)


class Tier(str, Enum):
    """Urgency tiers with deadlines to acceptance, as in established case management."""

    IMMEDIATE = "immediate"
    URGENT = "urgent"
    STANDARD = "standard"


class Case(Base):
    """A request for help: its reference, consent, routing position and deadline."""

    __tablename__ = "cases"
    __table_args__ = (
        # One open case per person, whatever races the application code misses.
        Index(
            "one_open_case_per_contact",
            "contact_id",
            unique=True,
            sqlite_where=text("status != 'closed'"),
            postgresql_where=text("status != 'closed'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(8), unique=True)
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    category_code: Mapped[str] = mapped_column(String(32))
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipalities.id"))
    country: Mapped[str | None] = mapped_column(String(2))
    urgency: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=CaseStatus.NEW.value, index=True)
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consent_channel: Mapped[str | None] = mapped_column(String(32))
    consent_wording: Mapped[str | None] = mapped_column(String(120))
    #: The organisations the consent covered (the routing when the person said yes): no
    #: other organisation ever receives the case.
    consent_scope: Mapped[list[int] | None] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(EncryptedText)
    shared_phone: Mapped[bool | None] = mapped_column(Boolean)
    contact_ok: Mapped[bool] = mapped_column(Boolean, default=False)
    safe_times: Mapped[str | None] = mapped_column(String(32))
    chain_position: Mapped[int] = mapped_column(Integer, default=0)
    assigned_focal_point_id: Mapped[int | None] = mapped_column(ForeignKey("focal_points.id"))
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("focal_points.id"))
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))
    rating: Mapped[int | None] = mapped_column(Integer)
    rating_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    municipality: Mapped[Municipality | None] = relationship()


class UnroutedRequest(Base):
    """A request nobody could receive (no focal point, no coordinator): counted for the
    figures, with nothing about the person."""

    __tablename__ = "unrouted_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int | None] = mapped_column(
        ForeignKey("municipalities.id", ondelete="SET NULL"), index=True
    )
    country: Mapped[str | None] = mapped_column(String(2))
    category_code: Mapped[str] = mapped_column(String(32))
    urgency: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class CaseEvent(Base):
    """Append-only case history: created, consent, forwarded, delivered, accepted, escalated..."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CaseNote(Base):
    """A note staff keep on a case for each other: encrypted like the person's words, shown only
    on the case page (every view audited), never sent to the person or in a focal point's SMS."""

    __tablename__ = "case_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: Who wrote it, as the audit log names them, kept when the account is removed.
    author: Mapped[str] = mapped_column(String(254))
    body: Mapped[str] = mapped_column(EncryptedText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxEvent(Base):
    """Work committed with the change that caused it; the referral drain (workers/jobs.py)
    claims pending events in batches, in the order of the partial index below."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        # Only the pending events: a claim reads a handful of entries however long the history.
        Index(
            "ix_outbox_events_pending",
            "priority",
            "id",
            sqlite_where=text("dispatched_at IS NULL"),
            postgresql_where=text("dispatched_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    priority: Mapped[str] = mapped_column(String(8), default="default")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FocalPoint(Base):
    """A person at an organisation who receives referrals by SMS (or a country coordinator)."""

    __tablename__ = "focal_points"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), unique=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipalities.id"))
    country: Mapped[str] = mapped_column(String(2), index=True)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_coordinator: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    contact: Mapped[Contact] = relationship()
    organization: Mapped[Organization] = relationship()


class RoutingChain(Base):
    """Who receives cases of a category in a municipality, in order."""

    __tablename__ = "routing_chains"
    __table_args__ = (UniqueConstraint("municipality_id", "category_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    category_code: Mapped[str] = mapped_column(String(32))

    steps: Mapped[list[RoutingStep]] = relationship(
        cascade="all, delete-orphan", order_by="RoutingStep.position"
    )


class RoutingStep(Base):
    """Position 0 holds the primary focal points, 1 the first backups, and so on."""

    __tablename__ = "routing_steps"
    __table_args__ = (UniqueConstraint("chain_id", "focal_point_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    chain_id: Mapped[int] = mapped_column(ForeignKey("routing_chains.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    focal_point_id: Mapped[int] = mapped_column(ForeignKey("focal_points.id"))

    focal_point: Mapped[FocalPoint] = relationship()


class DataSharingAgreement(Base):
    """An organisation receives referrals only while one of these is in force."""

    __tablename__ = "data_sharing_agreements"

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    reference: Mapped[str] = mapped_column(String(120))
    expires_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Referral(Base):
    """One alert of one case to one focal point, recorded before the provider is called."""

    __tablename__ = "referrals"
    __table_args__ = (UniqueConstraint("event_id", "focal_point_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("outbox_events.id", ondelete="CASCADE"))
    focal_point_id: Mapped[int] = mapped_column(ForeignKey("focal_points.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Subscription(Base):
    """A person's alerts for one municipality and topic, in their language."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("contact_id", "municipality_id", "topic"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"), index=True)
    topic: Mapped[str] = mapped_column(String(32), default="general")
    language: Mapped[str] = mapped_column(String(8))
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BroadcastStatus(str, Enum):
    DRAFT = "draft"
    AWAITING_APPROVAL = "awaiting_approval"  # over the threshold: a second person approves
    SCHEDULED = "scheduled"
    SENDING = "sending"
    DONE = "done"
    CANCELLED = "cancelled"


class Broadcast(Base):
    """An alert to everyone subscribed to a municipality (and topic, and language)."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipalities.id"))
    topic: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str | None] = mapped_column(String(8))
    texts: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # language -> text
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)  # goes out in quiet hours
    status: Mapped[str] = mapped_column(String(24), default=BroadcastStatus.DRAFT.value)
    channel: Mapped[str | None] = mapped_column(String(32))
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    approved_by: Mapped[str | None] = mapped_column(String(200))
    recipients_total: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RecipientStatus(str, Enum):
    PENDING = "pending"
    SENDING = "sending"  # claimed by a batch; a crash leaves it here for the resume
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    SKIPPED = "skipped"  # opted out, paused or cancelled before it went out


class BroadcastRecipient(Base):
    """The ledger: one row per (broadcast, person), so a broadcast resumes with no duplicate
    and no gap whatever happens to the workers."""

    __tablename__ = "broadcast_recipients"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "contact_id"),
        # Claiming a batch reads "this broadcast's pending rows, lowest ids first": one range
        # of this index. A broadcast_id-only index made the planner walk every row of the
        # broadcast for each claim (and for each row of the ledger insert) at 100,000 rows.
        Index("ix_broadcast_recipients_claim", "broadcast_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default=RecipientStatus.PENDING.value)
    provider_message_id: Mapped[str | None] = mapped_column(String(64), index=True)
    error_code: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class QuestionStatus(str, Enum):
    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"  # closed without an answer (nothing to answer, a test...)


class Question(Base):
    """A question a person sent for a human to answer by SMS (DOMAIN.md, journey 6)."""

    __tablename__ = "questions"
    __table_args__ = (UniqueConstraint("reference", name="uq_questions_reference"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Told to the person and named in the answer ("Q7K2P"); not personal: erasure deletes the row.
    reference: Mapped[str] = mapped_column(String(8))
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    country: Mapped[str | None] = mapped_column(String(2), index=True)
    text: Mapped[str | None] = mapped_column(EncryptedText)
    status: Mapped[str] = mapped_column(String(16), default=QuestionStatus.OPEN.value, index=True)
    answer: Mapped[str | None] = mapped_column(EncryptedText)
    answered_by: Mapped[str | None] = mapped_column(String(200))
    answer_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Role(str, Enum):
    ADMIN = "admin"
    FLOW_EDITOR = "flow_editor"
    DIRECTORY_EDITOR = "directory_editor"
    COORDINATOR = "coordinator"  # the cases of their country
    FOCAL_POINT = "focal_point"  # their own cases
    VIEWER = "viewer"


class User(Base):
    """An account of the web admin. Passwords are argon2 hashes; repeated failures lock it."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(24))
    country: Mapped[str | None] = mapped_column(String(2))
    focal_point_id: Mapped[int | None] = mapped_column(ForeignKey("focal_points.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Copied into each session cookie at login; bumped by logout, a password or a role change,
    #: which ends every session holding an older one.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The admin's language ("es", "en"); None: RUTA_ADMIN_LANGUAGE.
    language: Mapped[str | None] = mapped_column(String(5))
    #: An IANA zone for lists that mix countries; None: the country's zone, else the default.
    time_zone: Mapped[str | None] = mapped_column(String(64))
    #: The user's own phone (E.164), for a broadcast's test send; encrypted like every number.
    phone: Mapped[str | None] = mapped_column(EncryptedText)


class AuditEntry(Base):
    """Append-only: who did what to which object, when. Never updated or deleted by Ruta."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class FlowDraft(Base):
    """The working copy of a flow in the admin editor, published as a new FlowVersion."""

    __tablename__ = "flow_drafts"

    id: Mapped[int] = mapped_column(primary_key=True)
    flow_key: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def as_dict(obj: Base) -> dict[str, Any]:
    return {c.key: getattr(obj, c.key) for c in obj.__table__.columns}
