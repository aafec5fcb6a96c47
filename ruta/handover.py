"""Referral hand-over in batches: pending outbox events become alerts, set-based.

``claim`` takes up to ``limit`` pending forward events and writes, in the caller's transaction,
everything their dispatch means: one alert message and one referral per recipient, the cases'
new position, state and deadline, and their case events. The number of statements is the same
for one event or fifty:

1. claim the events: ``UPDATE outbox_events SET dispatched_at ... WHERE id IN (SELECT ...
   ORDER BY priority DESC, id LIMIT n FOR UPDATE SKIP LOCKED) RETURNING ...``. On PostgreSQL
   two workers take different events and never wait for each other; SQLite has no row locks,
   but every transaction takes its write lock at BEGIN (ruta/db.py), so claims are serialised
   there and never overlap either;
2. lock and read the cases, with their place's name and their kind's names (for the alert);
3. every recipient of every case in one query: the focal points of their routing chains by
   position and the coordinators of their countries, with whether each one's organisation has
   an agreement in force and whether their number opted out;
4. insert the messages (``RETURNING`` their ids), the referrals and the case events, one
   statement each, and update the cases in one statement (``CASE id WHEN ...``).

The alerts are written already claimed (``sending``, first attempt, ``claimed_at``): the worker
calls the provider right after commit, and a worker that dies before or during those calls
leaves claims the sweeper settles by asking the provider (workers/settlement.py), never a
message sent twice. An alert to a focal point who opted out is written ``suppressed``.

The routing rules are ``ruta.referrals``'s (``recipients``, ``escalate``): who is eligible
(active, agreement in force, organisation named in the consent), positions skipped when nobody
there can receive, the coordinator last, no deadline past the end of the chain.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Table,
    bindparam,
    cast,
    exists,
    insert,
    null,
    select,
    true,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from ruta import policy as policies
from ruta import taxonomy
from ruta.models import (
    Case,
    CaseEvent,
    CaseStatus,
    Category,
    Contact,
    DataSharingAgreement,
    Direction,
    FocalPoint,
    Message,
    MessagePurpose,
    MessageStatus,
    Municipality,
    OutboxEvent,
    Referral,
    RoutingChain,
    RoutingStep,
)
from ruta.referrals import Work, escalate, text

EVENTS: Table = OutboxEvent.__table__  # type: ignore[assignment]
CASES: Table = Case.__table__  # type: ignore[assignment]
MESSAGES: Table = Message.__table__  # type: ignore[assignment]
REFERRALS: Table = Referral.__table__  # type: ignore[assignment]
CASE_EVENTS: Table = CaseEvent.__table__  # type: ignore[assignment]
_DISPATCHABLE = (CaseStatus.NEW.value, CaseStatus.FORWARDED.value)


@dataclass(frozen=True)
class Send:
    """One alert to hand to the provider: ``raised_at`` is when its outbox event was
    committed (where the hand-off latency starts)."""

    message_id: int
    to: str
    body: str
    raised_at: datetime


@dataclass
class Batch:
    """What one claim wrote: the alerts to send, those suppressed (their focal point opted
    out), and the deadlines it started."""

    claimed: int = 0
    sends: list[Send] = field(default_factory=list)
    suppressed: list[int] = field(default_factory=list)
    deadlines: list[tuple[int, datetime]] = field(default_factory=list)


@dataclass(frozen=True)
class _Recipient:
    id: int
    organization_id: int
    eligible: bool  # active, and an agreement of the organisation in force
    language: str
    contact_id: int
    phone: str
    opted_out: bool


@dataclass(frozen=True)
class _Case:
    id: int
    status: str
    chain_position: int
    municipality_id: int | None
    country: str | None
    category_code: str
    urgency: str
    reference: str
    consent_scope: list[int] | None
    place: str | None
    kind_names: dict[str, str] | None


def claim(
    session: Session,
    *,
    now: datetime,
    policy: policies.Policy,
    channel: str,
    limit: int,
    event_ids: Sequence[int] | None = None,
) -> Batch:
    """Claim up to ``limit`` pending events (immediate cases first, then oldest first), or
    only those of ``event_ids``, and write their alerts; see the module's docstring."""
    postgres = session.get_bind().dialect.name == "postgresql"
    pending = select(EVENTS.c.id).where(EVENTS.c.dispatched_at.is_(None))
    if event_ids is not None:
        pending = pending.where(EVENTS.c.id.in_(list(event_ids)))
    # "high" sorts after "default": descending puts immediate cases first.
    pending = pending.order_by(EVENTS.c.priority.desc(), EVENTS.c.id).limit(limit)
    if postgres:
        pending = pending.with_for_update(skip_locked=True)
    claimed = session.execute(
        update(EVENTS)
        .where(EVENTS.c.id.in_(pending.scalar_subquery()))
        .values(dispatched_at=now)
        .returning(EVENTS.c.id, EVENTS.c.case_id, EVENTS.c.payload, EVENTS.c.created_at)
    ).all()
    batch = Batch(claimed=len(claimed))
    if not claimed:
        return batch
    events = sorted(claimed, key=lambda row: row.id)
    cases = _lock_cases(session, {row.case_id for row in events if row.case_id}, postgres)
    chains, coordinators = _recipients(session, cases.values(), now.date())
    writer = _Writer(now=now, channel=channel, policy=policy)
    for event in events:
        found = cases.get(event.case_id)
        if found is None or found.id in writer.updated:
            # Two events of one case in a batch: the first moves it, the second is stale.
            continue
        position = int((event.payload or {}).get("position", 0))
        if found.status not in _DISPATCHABLE:
            continue
        if found.status == CaseStatus.FORWARDED.value and position != found.chain_position:
            continue  # a stale event: the case has moved on
        positions = (
            chains.get((found.municipality_id, found.category_code), [])
            if found.municipality_id is not None
            else []
        )
        writer.dispatch(found, event.id, event.created_at, position, positions, coordinators)
    writer.write(session, batch)
    return batch


def _lock_cases(session: Session, ids: set[int], postgres: bool) -> dict[int, _Case]:
    if not ids:
        return {}
    places: Table = Municipality.__table__  # type: ignore[assignment]
    kinds: Table = Category.__table__  # type: ignore[assignment]
    query = (
        select(
            CASES.c.id,
            CASES.c.status,
            CASES.c.chain_position,
            CASES.c.municipality_id,
            CASES.c.country,
            CASES.c.category_code,
            CASES.c.urgency,
            CASES.c.reference,
            CASES.c.consent_scope,
            places.c.name,
            kinds.c.names,
        )
        .select_from(
            CASES.outerjoin(places, places.c.id == CASES.c.municipality_id).outerjoin(
                kinds, kinds.c.code == CASES.c.category_code
            )
        )
        .where(CASES.c.id.in_(sorted(ids)))
        .order_by(CASES.c.id)  # locks taken in one order: two batches never deadlock
    )
    if postgres:
        query = query.with_for_update(of=CASES)
    return {
        row.id: _Case(
            id=row.id,
            status=row.status,
            chain_position=row.chain_position or 0,
            municipality_id=row.municipality_id,
            country=row.country,
            category_code=row.category_code,
            urgency=row.urgency,
            reference=row.reference,
            consent_scope=row.consent_scope,
            place=row.name,
            kind_names=row.names,
        )
        for row in session.execute(query)
    }


def _recipients(
    session: Session, cases: Any, today: date
) -> tuple[dict[tuple[int, str], list[list[_Recipient]]], dict[str, list[_Recipient]]]:
    """Every chain (by position, in its steps' order) and every coordinator (by id) the cases
    may reach, in one query."""
    cases = list(cases)
    pairs = sorted({(c.municipality_id, c.category_code) for c in cases if c.municipality_id})
    countries = sorted({c.country for c in cases if c.country})
    if not pairs and not countries:
        return {}, {}
    fp: Table = FocalPoint.__table__  # type: ignore[assignment]
    contacts: Table = Contact.__table__  # type: ignore[assignment]
    chains: Table = RoutingChain.__table__  # type: ignore[assignment]
    steps: Table = RoutingStep.__table__  # type: ignore[assignment]
    agreements: Table = DataSharingAgreement.__table__  # type: ignore[assignment]
    in_force = exists().where(
        agreements.c.organization_id == fp.c.organization_id, agreements.c.expires_on >= today
    )
    person = (
        fp.c.id,
        fp.c.organization_id,
        (fp.c.active & in_force).label("eligible"),
        fp.c.languages,
        fp.c.contact_id,
        contacts.c.phone,
        contacts.c.opted_out,
    )
    parts = []
    if pairs:
        parts.append(
            select(
                chains.c.municipality_id,
                chains.c.category_code,
                steps.c.position,
                steps.c.id.label("step"),
                cast(null(), String(2)).label("country"),
                *person,
            )
            .select_from(
                chains.join(steps, steps.c.chain_id == chains.c.id)
                .join(fp, fp.c.id == steps.c.focal_point_id)
                .join(contacts, contacts.c.id == fp.c.contact_id)
            )
            .where(tuple_(chains.c.municipality_id, chains.c.category_code).in_(pairs))
        )
    if countries:
        parts.append(
            select(
                cast(null(), Integer).label("municipality_id"),
                cast(null(), String(32)).label("category_code"),
                cast(null(), Integer).label("position"),
                cast(null(), Integer).label("step"),
                fp.c.country,
                *person,
            )
            .select_from(fp.join(contacts, contacts.c.id == fp.c.contact_id))
            .where(fp.c.is_coordinator.is_(true()), fp.c.country.in_(countries))
        )
    query = parts[0] if len(parts) == 1 else union_all(*parts)
    by_chain: dict[tuple[int, str], dict[int, list[tuple[int, _Recipient]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    coordinators: dict[str, list[_Recipient]] = defaultdict(list)
    for row in session.execute(query).all():
        recipient = _Recipient(
            id=row.id,
            organization_id=row.organization_id,
            eligible=bool(row.eligible),
            language=(row.languages or ["es"])[0],
            contact_id=row.contact_id,
            phone=row.phone,
            opted_out=bool(row.opted_out),
        )
        if row.municipality_id is None:
            coordinators[row.country].append(recipient)
        else:
            by_chain[(row.municipality_id, row.category_code)][row.position].append(
                (row.step, recipient)
            )
    chains_by_position = {
        pair: [[r for _step, r in sorted(found[p], key=lambda x: x[0])] for p in sorted(found)]
        for pair, found in by_chain.items()
    }
    for found in coordinators.values():
        found.sort(key=lambda r: r.id)
    return chains_by_position, coordinators


class _Writer:
    """The rows a batch writes, gathered case by case, then written one statement a table."""

    def __init__(self, *, now: datetime, channel: str, policy: policies.Policy) -> None:
        self.now, self.channel, self.policy = now, channel, policy
        self.case_events: list[dict[str, Any]] = []
        self.updated: dict[int, dict[str, Any]] = {}
        # (message row, referral row without its message id, phone, raised at)
        self.alerts: list[tuple[dict[str, Any], dict[str, Any], str, datetime]] = []
        self.deadlines: list[tuple[int, datetime]] = []

    def event(self, case_id: int, kind: str, **data: Any) -> None:
        self.case_events.append({"case_id": case_id, "kind": kind, "actor": "system", "data": data})

    def dispatch(
        self,
        case: _Case,
        event_id: int,
        raised_at: datetime,
        position: int,
        positions: list[list[_Recipient]],
        coordinators: Mapping[str, list[_Recipient]],
    ) -> None:
        coordinator_stage = len(positions)
        found: list[_Recipient] = []
        while position <= coordinator_stage:
            candidates = (
                positions[position]
                if position < coordinator_stage
                else coordinators.get(case.country or "", [])
            )
            found = [r for r in candidates if r.eligible]
            if case.consent_scope is not None:
                covered = set(case.consent_scope)
                outside = [r.id for r in found if r.organization_id not in covered]
                if outside:
                    self.event(
                        case.id,
                        "not_covered",
                        position=position,
                        focal_points=outside,
                        reason="organisation not named in the consent",
                    )
                found = [r for r in found if r.organization_id in covered]
            if found:
                break
            self.event(case.id, "skipped", position=position, reason="no recipient")
            position += 1
        if not found:
            self.updated[case.id] = {
                "chain_position": position,
                "overdue": True,
                "deadline_at": None,
            }
            self.event(case.id, "unrouted", reason="no focal point or coordinator")
            return
        for recipient in found:
            body = text(
                recipient.language,
                "alert",
                ref=case.reference,
                category=taxonomy.kind_name_from(
                    case.kind_names, case.category_code, recipient.language
                ),
                place=case.place or "-",
                tier=taxonomy.tier_name(case.urgency, recipient.language),
            )
            suppressed = recipient.opted_out
            message = {
                "direction": Direction.OUTBOUND.value,
                "channel": self.channel,
                "contact_id": recipient.contact_id,
                "body": body,
                "status": (MessageStatus.SUPPRESSED if suppressed else MessageStatus.SENDING).value,
                "purpose": MessagePurpose.ALERT.value,
                "attempts": 0 if suppressed else 1,
                "claimed_at": None if suppressed else self.now,
            }
            referral = {
                "case_id": case.id,
                "event_id": event_id,
                "focal_point_id": recipient.id,
                "position": position,
                "created_at": self.now,
            }
            self.alerts.append((message, referral, recipient.phone, raised_at))
        values: dict[str, Any] = {
            "status": CaseStatus.FORWARDED.value,
            "chain_position": position,
            "assigned_focal_point_id": found[0].id,
            "deadline_at": None,  # the coordinator is the end of the line
        }
        if position < coordinator_stage:
            values["deadline_at"] = self.now + self.policy.deadline(
                case.urgency, case.country, case.category_code
            )
            self.deadlines.append((case.id, values["deadline_at"]))
        self.updated[case.id] = values
        self.event(
            case.id,
            "forwarded",
            position=position,
            focal_points=[r.id for r in found],
            coordinator=position == coordinator_stage,
        )

    def write(self, session: Session, batch: Batch) -> None:
        if self.alerts:
            ids = session.scalars(
                insert(MESSAGES).returning(MESSAGES.c.id, sort_by_parameter_order=True),
                [message for message, _, _, _ in self.alerts],
            ).all()
            session.execute(
                insert(REFERRALS),
                [
                    {**referral, "message_id": message_id}
                    for (_, referral, _, _), message_id in zip(self.alerts, ids, strict=True)
                ],
            )
            for (message, _, phone, raised_at), message_id in zip(self.alerts, ids, strict=True):
                if message["status"] == MessageStatus.SUPPRESSED.value:
                    batch.suppressed.append(message_id)
                else:
                    batch.sends.append(Send(message_id, phone, message["body"], raised_at))
        update_each(session, CASES, self.updated)
        if self.case_events:
            session.execute(insert(CASE_EVENTS), self.case_events)
        batch.deadlines = self.deadlines


def update_each(
    session: Session,
    table: Table,
    rows: Mapping[int, Mapping[str, Any]],
    *where: ColumnElement[bool],
) -> None:
    """Give each row (by id) its own values: one ``UPDATE ... WHERE id = ?`` per set of columns
    named, run for all its rows at once (an executemany: psycopg pipelines the rows in one round
    trip, and the statement is compiled once per process rather than a ``CASE`` of literals per
    call), on the rows that also match ``where``."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row_id, values in rows.items():
        row = {"row_id": row_id, **{f"new_{name}": value for name, value in values.items()}}
        groups.setdefault(tuple(sorted(values)), []).append(row)
    for columns, params in groups.items():
        statement = (
            update(table)
            .where(table.c.id == bindparam("row_id"), *where)
            .values({name: bindparam(f"new_{name}", type_=table.c[name].type) for name in columns})
        )
        session.execute(statement, params)


def escalate_due(session: Session, *, now: datetime, limit: int) -> tuple[Work, int]:
    """Escalate up to ``limit`` forwarded cases whose deadline has passed (``cases.deadline_at``
    is indexed); on PostgreSQL a case another worker is escalating is skipped, not waited for.
    Returns the follow-up work and how many cases were due."""
    query = (
        select(Case)
        .where(Case.status == CaseStatus.FORWARDED.value, Case.deadline_at <= now)
        .order_by(Case.deadline_at, Case.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    work = Work()
    due = session.scalars(query).all()
    for found in due:
        work.merge(escalate(session, found, now=now, reason="deadline", actor="system"))
    return work, len(due)
