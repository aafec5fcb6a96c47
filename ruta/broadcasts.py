"""Broadcasts: who receives one, its recipient ledger, claiming batches, cancelling, quiet hours.

The ledger (``BroadcastRecipient``, unique per broadcast and contact) is written once when the
broadcast starts; workers then claim pending rows in batches (pending -> sending) and write each
outcome back. A row left in "sending" by a dead worker goes back to pending after a while
(``stuck_claims``, ``settle_stuck``), unless the provider says it has that message already.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    CursorResult,
    Select,
    case,
    exists,
    func,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from flows.encoding import sms_cost
from ruta import contacts
from ruta import policy as policies
from ruta.models import (
    OPEN_CASE_STATUSES,
    Broadcast,
    BroadcastRecipient,
    BroadcastStatus,
    Case,
    Contact,
    Direction,
    Message,
    MessagePurpose,
    MessageStatus,
    Municipality,
    RecipientStatus,
    Subscription,
    UTCDateTime,
)
from ruta.referrals import Work

__all__ = [
    "cancel",
    "claim_batch",
    "country_of",
    "finish_if_done",
    "has_pending",
    "paused_contacts",
    "progress",
    "quiet_until",
    "recipients_query",
    "sample_sends",
    "send_sample",
    "settle_stuck",
    "stalled",
    "start",
    "stuck_claims",
    "text_for",
    "with_stop_line",
]

#: Statuses from which a broadcast can still start sending.
STARTABLE = (BroadcastStatus.SCHEDULED.value, BroadcastStatus.SENDING.value)


#: The topic of a subscription to every kind of alert.
GENERAL_TOPIC = "general"


def _sensitive_case(contact_id: Any, policy: policies.Policy) -> Any:
    return exists().where(
        Case.contact_id == contact_id,
        Case.status.in_(OPEN_CASE_STATUSES),
        Case.category_code.in_(sorted(policy.sensitive_categories)),
    )


def default_language(broadcast: Broadcast) -> str:
    """The text used for subscribers whose language the broadcast has no text in."""
    available = [lang for lang, text in (broadcast.texts or {}).items() if text]
    if not available:
        raise ValueError(f"broadcast {broadcast.id} has no text")
    return "es" if "es" in available else available[0]


#: The last line of every broadcast, in the language of its text: how to stop receiving them.
#: The opt-out keywords (settings.yaml) stop every message, alerts included, which is what the
#: line says; the admin's preview counts it.
STOP_LINE = {
    "es": "Para no recibir mas: BAJA",
    "en": "To receive no more: STOP",
}


def with_stop_line(text: str, language: str) -> str:
    """``text`` as sent: followed by the stop line of its language (Spanish's otherwise)."""
    return f"{text}\n{STOP_LINE.get(language, STOP_LINE['es'])}"


def text_for(broadcast: Broadcast, language: str) -> str:
    """What a subscriber reading ``language`` receives: that text, or the default one, with the
    stop line of the text's own language."""
    texts = broadcast.texts or {}
    if not texts.get(language):
        language = default_language(broadcast)
    return with_stop_line(texts[language], language)


def recipients_query(
    session: Session, broadcast: Broadcast, policy: policies.Policy, pause_sensitive: bool
) -> Select[int, str]:
    """``(contact_id, language)`` of everyone who gets ``broadcast``, one row per contact:
    active subscriptions matching its municipality, topic and language (None matches any),
    contacts not opted out, and (``pause_sensitive``) nobody with an open sensitive case."""
    query = (
        select(
            Subscription.contact_id.label("contact_id"),
            func.min(Subscription.language).label("language"),
        )
        .join(Contact, Contact.id == Subscription.contact_id)
        .where(Subscription.active.is_(True), Contact.opted_out.is_(False))
        .group_by(Subscription.contact_id)
    )
    if broadcast.municipality_id is not None:
        query = query.where(Subscription.municipality_id == broadcast.municipality_id)
    if broadcast.topic is not None:
        # Someone subscribed to everything ("general") gets every topic's broadcasts too.
        query = query.where(Subscription.topic.in_([broadcast.topic, GENERAL_TOPIC]))
    if broadcast.language is not None:
        query = query.where(Subscription.language == broadcast.language)
    if pause_sensitive and policy.sensitive_categories:
        query = query.where(~_sensitive_case(Subscription.contact_id, policy))
    return query


def start(
    session: Session,
    broadcast_id: int,
    now: datetime,
    *,
    policy: policies.Policy | None = None,
    pause_sensitive: bool = True,
) -> int | None:
    """Write the ledger (only the missing rows: running it again adds nobody twice) and mark
    the broadcast sending. Returns the number of recipients, or None when the broadcast is not
    scheduled or sending (a draft, awaiting approval, done, cancelled)."""
    policy = policy or policies.load()
    broadcast = session.get(Broadcast, broadcast_id, with_for_update=True)
    if broadcast is None or broadcast.status not in STARTABLE:
        return None
    audience = recipients_query(session, broadcast, policy, pause_sensitive).subquery()
    available = [lang for lang, text in (broadcast.texts or {}).items() if text]
    language = case(
        (audience.c.language.in_(available), audience.c.language),
        else_=literal(default_language(broadcast)),
    )
    rows = select(
        literal(broadcast_id),
        audience.c.contact_id,
        language,
        literal(RecipientStatus.PENDING.value),
        literal(now, UTCDateTime()),
    ).where(true())  # SQLite reads "ON CONFLICT" after a bare FROM as a join's ON
    # ON CONFLICT rather than NOT EXISTS: an anti-join against the rows being inserted was
    # planned as a scan of the broadcast's ledger per row (quadratic) on fresh statistics.
    session.execute(
        _insert_ignoring_existing(session)
        .from_select(["broadcast_id", "contact_id", "language", "status", "updated_at"], rows)
        .on_conflict_do_nothing(index_elements=["broadcast_id", "contact_id"])
    )
    total = int(
        session.scalar(
            select(func.count())
            .select_from(BroadcastRecipient)
            .where(BroadcastRecipient.broadcast_id == broadcast_id)
        )
        or 0
    )
    broadcast.recipients_total = total
    if broadcast.status != BroadcastStatus.SENDING.value:
        broadcast.status = BroadcastStatus.SENDING.value
        broadcast.started_at = now
    return total


def _insert_ignoring_existing(session: Session) -> Any:
    """``INSERT`` of the session's dialect, which has ``on_conflict_do_nothing``."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(BroadcastRecipient)
    return sqlite.insert(BroadcastRecipient)


def claim_batch(
    session: Session, broadcast_id: int, size: int, now: datetime | None = None
) -> list[BroadcastRecipient]:
    """Claim up to ``size`` pending rows (pending -> sending), lowest ids first. Two workers
    never claim the same row: PostgreSQL skips rows another transaction has locked, SQLite
    serialises write transactions (BEGIN IMMEDIATE). Nothing is claimed once the broadcast is
    no longer sending (cancelled)."""
    status = session.scalar(select(Broadcast.status).where(Broadcast.id == broadcast_id))
    if status != BroadcastStatus.SENDING.value:
        return []
    ids = list(
        session.scalars(
            select(BroadcastRecipient.id)
            .where(
                BroadcastRecipient.broadcast_id == broadcast_id,
                BroadcastRecipient.status == RecipientStatus.PENDING.value,
            )
            .order_by(BroadcastRecipient.id)
            .limit(size)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return []
    values: dict[str, Any] = {"status": RecipientStatus.SENDING.value}
    if now is not None:
        values["updated_at"] = now
    session.execute(
        update(BroadcastRecipient)
        .where(
            BroadcastRecipient.id.in_(ids),
            BroadcastRecipient.status == RecipientStatus.PENDING.value,
        )
        .values(**values),
        execution_options={"synchronize_session": False},
    )
    return list(
        session.scalars(
            select(BroadcastRecipient)
            .where(BroadcastRecipient.id.in_(ids))
            .order_by(BroadcastRecipient.id)
            .execution_options(populate_existing=True)
        )
    )


def has_pending(session: Session, broadcast_id: int) -> bool:
    return (
        session.scalar(
            select(BroadcastRecipient.id)
            .where(
                BroadcastRecipient.broadcast_id == broadcast_id,
                BroadcastRecipient.status == RecipientStatus.PENDING.value,
            )
            .limit(1)
        )
        is not None
    )


def finish_if_done(session: Session, broadcast_id: int, now: datetime) -> bool:
    """Mark a sending broadcast done once no row is pending or sending; True if it is done."""
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None:
        return False
    if broadcast.status == BroadcastStatus.DONE.value:
        return True
    if broadcast.status != BroadcastStatus.SENDING.value:
        return False
    unfinished = session.scalar(
        select(BroadcastRecipient.id)
        .where(
            BroadcastRecipient.broadcast_id == broadcast_id,
            BroadcastRecipient.status.in_(
                (RecipientStatus.PENDING.value, RecipientStatus.SENDING.value)
            ),
        )
        .limit(1)
    )
    if unfinished is not None:
        return False
    broadcast.status = BroadcastStatus.DONE.value
    broadcast.finished_at = now
    return True


def cancel(session: Session, broadcast_id: int, now: datetime) -> int:
    """Cancel: nobody not yet claimed gets it (pending rows -> skipped). Rows a worker has
    already claimed may still go out. Returns the number of rows skipped."""
    broadcast = session.get(Broadcast, broadcast_id, with_for_update=True)
    if broadcast is None or broadcast.status in (
        BroadcastStatus.DONE.value,
        BroadcastStatus.CANCELLED.value,
    ):
        return 0
    broadcast.status = BroadcastStatus.CANCELLED.value
    broadcast.cancelled_at = now
    skipped: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(BroadcastRecipient)
        .where(
            BroadcastRecipient.broadcast_id == broadcast_id,
            BroadcastRecipient.status == RecipientStatus.PENDING.value,
        )
        .values(status=RecipientStatus.SKIPPED.value, error_code="cancelled", updated_at=now),
        execution_options={"synchronize_session": False},
    )
    return int(skipped.rowcount or 0)


@dataclass(frozen=True)
class StuckClaim:
    """Rows one worker claimed together (same broadcast, same claim time) and never finished.
    Rows of a claim are sent one after the other in id order, so only the first (``first``)
    can have reached the provider when the worker died: the rest were never sent."""

    broadcast_id: int
    claimed_at: datetime
    row_ids: list[int]

    @property
    def first(self) -> int:
        return self.row_ids[0]


def stuck_claims(session: Session, cutoff: datetime) -> list[StuckClaim]:
    """Claims of broadcasts still sending whose rows are in "sending" since before ``cutoff``
    (their worker died)."""
    rows = session.execute(
        select(
            BroadcastRecipient.broadcast_id, BroadcastRecipient.updated_at, BroadcastRecipient.id
        )
        .join(Broadcast, Broadcast.id == BroadcastRecipient.broadcast_id)
        .where(
            Broadcast.status == BroadcastStatus.SENDING.value,
            BroadcastRecipient.status == RecipientStatus.SENDING.value,
            BroadcastRecipient.updated_at < cutoff,
        )
        .order_by(
            BroadcastRecipient.broadcast_id, BroadcastRecipient.updated_at, BroadcastRecipient.id
        )
    ).all()
    claims: dict[tuple[int, datetime], list[int]] = {}
    for broadcast_id, claimed_at, row_id in rows:
        claims.setdefault((int(broadcast_id), claimed_at), []).append(int(row_id))
    return [StuckClaim(b, at, ids) for (b, at), ids in claims.items()]


def settle_stuck(session: Session, sent: dict[int, str], reset: list[int], now: datetime) -> int:
    """Rows the provider turned out to have (``sent``: row id -> provider message id) become
    sent; ``reset`` rows go back to pending, to be sent again. Only rows still in "sending"
    are touched. Returns the number reset."""
    for row_id, provider_id in sent.items():
        session.execute(
            update(BroadcastRecipient)
            .where(
                BroadcastRecipient.id == row_id,
                BroadcastRecipient.status == RecipientStatus.SENDING.value,
            )
            .values(
                status=RecipientStatus.SENT.value, provider_message_id=provider_id, updated_at=now
            ),
            execution_options={"synchronize_session": False},
        )
    if not reset:
        return 0
    done: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(BroadcastRecipient)
        .where(
            BroadcastRecipient.id.in_(reset),
            BroadcastRecipient.status == RecipientStatus.SENDING.value,
        )
        .values(status=RecipientStatus.PENDING.value, updated_at=now),
        execution_options={"synchronize_session": False},
    )
    return int(done.rowcount or 0)


def stalled(session: Session, cutoff: datetime) -> list[int]:
    """Sending broadcasts with pending rows and no row touched since ``cutoff``: no job is
    carrying them (Redis lost the job, retries ran out)."""
    recent = exists().where(
        BroadcastRecipient.broadcast_id == Broadcast.id, BroadcastRecipient.updated_at >= cutoff
    )
    pending = exists().where(
        BroadcastRecipient.broadcast_id == Broadcast.id,
        BroadcastRecipient.status == RecipientStatus.PENDING.value,
    )
    return list(
        session.scalars(
            select(Broadcast.id).where(
                Broadcast.status == BroadcastStatus.SENDING.value, pending, ~recent
            )
        )
    )


def paused_contacts(
    session: Session, contact_ids: list[int], policy: policies.Policy, pause_sensitive: bool
) -> set[int]:
    """Of ``contact_ids``, those who must get nothing now: opted out, or (``pause_sensitive``)
    with an open sensitive case. Checked right before sending."""
    if not contact_ids:
        return set()
    condition = Contact.opted_out.is_(True)
    if pause_sensitive and policy.sensitive_categories:
        condition = condition | _sensitive_case(Contact.id, policy)
    return set(session.scalars(select(Contact.id).where(Contact.id.in_(contact_ids), condition)))


def country_of(session: Session, broadcast: Broadcast) -> str | None:
    if broadcast.municipality_id is None:
        return None
    return session.scalar(
        select(Municipality.country).where(Municipality.id == broadcast.municipality_id)
    )


def quiet_until(policy: policies.Policy, country: str | None, now: datetime) -> datetime | None:
    """When ``now`` falls in the country's quiet hours, the (UTC) time they end; else None."""
    hours = policy.quiet_hours(country)
    if hours is None:
        return None
    start_at, end_at = hours
    zone = policy.timezone(country)
    local = now.astimezone(zone)
    moment = local.time().replace(tzinfo=None)
    if start_at < end_at:
        quiet = start_at <= moment < end_at
        end_day = local.date()
    else:  # over midnight, e.g. 20:00 - 07:00
        quiet = moment >= start_at or moment < end_at
        end_day = local.date() + timedelta(days=1) if moment >= start_at else local.date()
    if not quiet:
        return None
    end = datetime.combine(end_day, end_at, tzinfo=zone)
    return end.astimezone(now.tzinfo)


def progress(session: Session, broadcast_id: int) -> dict[str, int]:
    """Recipient rows by status (every status, zero included) and their ``total``."""
    counts = {status.value: 0 for status in RecipientStatus}
    rows = session.execute(
        select(BroadcastRecipient.status, func.count())
        .where(BroadcastRecipient.broadcast_id == broadcast_id)
        .group_by(BroadcastRecipient.status)
    )
    for status, number in rows:
        counts[str(status)] = int(number)
    counts["total"] = sum(counts.values())
    return counts


#: Test sends one broadcast may have: enough to try each language on a phone or two, not a way
#: round the audience, the approval or the figures.
MAX_SAMPLES = 5


class SampleRefused(Exception):
    """A test send (a sample to the sender's own phone) that cannot go; ``reason`` is
    ``over`` (no more for this broadcast) or ``no_text`` (none in that language)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sample_sends(session: Session, broadcast_id: int) -> list[Message]:
    """The broadcast's test sends, newest first."""
    return list(
        session.scalars(
            select(Message)
            .where(
                Message.broadcast_id == broadcast_id,
                Message.purpose == MessagePurpose.BROADCAST_TEST.value,
            )
            .order_by(Message.id.desc())
        )
    )


def send_sample(
    session: Session,
    broadcast: Broadcast,
    phone: str,
    language: str,
    *,
    channel: str,
    now: datetime,
) -> Work:
    """Queue the broadcast's text in ``language`` (with its stop line, as subscribers get it)
    to ``phone`` alone, the sender's own. It goes out as any single message (a worker, the
    provider, delivery reports) and is a message of purpose "broadcast_test" naming the
    broadcast: the ledger, and so the broadcast's figures and audience, never include it."""
    if not (broadcast.texts or {}).get(language):
        raise SampleRefused("no_text")
    if len(sample_sends(session, broadcast.id)) >= MAX_SAMPLES:
        raise SampleRefused("over")
    body = text_for(broadcast, language)
    cost = sms_cost(body)
    owner = contacts.lock_contact(session, phone)
    message = Message(
        direction=Direction.OUTBOUND.value,
        channel=channel,
        contact_id=owner.id,
        body=body,
        status=MessageStatus.QUEUED.value,
        purpose=MessagePurpose.BROADCAST_TEST.value,
        segments=cost.segments,
        encoding=cost.encoding,
        broadcast_id=broadcast.id,
        created_at=now,
    )
    session.add(message)
    session.flush()
    return Work(message_ids=[message.id])
