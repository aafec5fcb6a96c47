"""Opening a person's case on the webhook's path: two round trips, statements built once.

``referrals.open_case`` does the same through the ORM: a unit of work per row, a statement
compiled or looked up per call, a round trip per statement (about eleven in all, 8 ms of the
web's CPU a case). Here the reads go out together (the person's open case, locked; the place;
who can receive it now; whether the drawn reference is free) and so do the writes (the case,
its history, the outbox event the referral drain hands over), each statement prepared once
per database connection (``ruta/sql.py``).

Only the common case is lean: a person without an open case. One with an open case (a request
nobody could receive, completed now, or one already forwarded) and a reference drawn twice go
to ``referrals.open_case`` in the same transaction, which decides as it always has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import BindParameter, bindparam, insert, literal_column, select

from flows.services import CaseRequest
from ruta import cases, referrals, routing
from ruta import policy as policies
from ruta.cases import draw_reference as new_reference
from ruta.models import (
    OPEN_CASE_STATUSES,
    Case,
    CaseEvent,
    CaseStatus,
    FocalPoint,
    Municipality,
    OutboxEvent,
    RoutingChain,
    UnroutedRequest,
    utcnow,
)
from ruta.sql import Prepared, Row, Tx

_code: BindParameter[str] = bindparam("code")
_OPEN_CASE = Prepared(
    select(Case.id)
    .where(
        Case.contact_id == bindparam("contact_id"),
        # Inline: an expanding IN list is rendered per call, which ruta/sql.py never does.
        Case.status.in_([literal_column(f"'{status}'") for status in OPEN_CASE_STATUSES]),
    )
    .order_by(Case.id)
    .limit(1)
    .with_for_update()
)
_PLACE = Prepared(
    select(Municipality.id, Municipality.country).where(Municipality.code == bindparam("code"))
)
_TAKEN = Prepared(select(Case.id).where(Case.reference == bindparam("reference")))


def _route_statement() -> Prepared:
    """``routing.resolve``'s query by the place's code, so it goes out with the other reads."""
    chain_id = (
        select(RoutingChain.id)
        .join(Municipality, Municipality.id == RoutingChain.municipality_id)
        .where(Municipality.code == _code, RoutingChain.category_code == bindparam("category"))
        .scalar_subquery()
    )
    country = select(Municipality.country).where(Municipality.code == _code).scalar_subquery()
    columns = [
        FocalPoint.organization_id,
        FocalPoint.active,
        FocalPoint.is_coordinator,
        FocalPoint.country,
    ]
    return Prepared(routing.stages_query(columns, chain_id, country, bindparam("today")))


_ROUTE = _route_statement()
_case_id = select(Case.id).where(Case.reference == bindparam("reference")).scalar_subquery()
_INSERT_CASE = Prepared(
    insert(Case).values(
        reference=bindparam("reference"),
        contact_id=bindparam("contact_id"),
        category_code=bindparam("category"),
        municipality_id=bindparam("municipality_id"),
        country=bindparam("country"),
        urgency=bindparam("urgency"),
        status=CaseStatus.NEW.value,
        consent_at=bindparam("consent_at"),
        consent_channel=bindparam("consent_channel"),
        consent_wording=bindparam("consent_wording"),
        consent_scope=bindparam("consent_scope", type_=Case.__table__.c.consent_scope.type),
        description=bindparam("description", type_=Case.__table__.c.description.type),
        shared_phone=bindparam("shared_phone"),
        contact_ok=bindparam("contact_ok"),
        safe_times=bindparam("safe_times"),
        chain_position=0,
        overdue=False,
        created_at=bindparam("created_at"),
    )
)
_EVENT = Prepared(
    insert(CaseEvent).values(
        case_id=_case_id,
        kind=bindparam("kind"),
        actor="person",
        data=bindparam("data", type_=CaseEvent.__table__.c.data.type),
        created_at=bindparam("created_at"),
    )
)
_FORWARD = Prepared(
    insert(OutboxEvent)
    .values(
        kind=referrals.FORWARD,
        case_id=_case_id,
        payload=bindparam("payload", type_=OutboxEvent.__table__.c.payload.type),
        priority=bindparam("priority"),
        created_at=bindparam("created_at"),
    )
    .returning(OutboxEvent.id)
)
_UNROUTED = Prepared(
    insert(UnroutedRequest).values(
        municipality_id=bindparam("municipality_id"),
        country=bindparam("country"),
        category_code=bindparam("category"),
        urgency=bindparam("urgency"),
        channel=bindparam("channel"),
        created_at=bindparam("created_at"),
    )
)


@dataclass(frozen=True)
class Reach:
    """Who can receive a request now, as ``routing.Route`` says it, by ids."""

    organization_ids: list[int]

    @property
    def reaches_anyone(self) -> bool:
        return bool(self.organization_ids)

    @classmethod
    def of(cls, rows: Sequence[Row], country: str | None) -> Reach:
        # The rule of routing.resolve: a chain's focal point, or a coordinator of the
        # country, active and of an organisation with an agreement in force.
        found = {
            organization_id
            for organization_id, active, coordinator, fp_country, position, agreed in rows
            if active
            and agreed
            and (position is not None or (coordinator and country and fp_country == country))
        }
        return cls(sorted(found))


def reach(tx: Tx, municipality: str, category: str, today: date) -> Reach | None:
    """Who can receive (``municipality``, ``category``) today; None for an unknown place."""
    place, rows = tx.run(
        _PLACE(code=municipality), _ROUTE(code=municipality, category=category, today=today)
    )
    return Reach.of(rows, place[0][1]) if place else None


def open_case(
    tx: Tx,
    request: CaseRequest,
    *,
    contact_id: int | None,
    now: datetime,
    policy: policies.Policy,
) -> tuple[str | None, referrals.Work]:
    """``referrals.open_case`` for the webhook: the new case's reference (None when nobody can
    receive it: only the unmet need is counted) and the work to hand over after commit."""
    reference = new_reference()
    code = request.municipality
    reads = [_TAKEN(reference=reference)]
    if contact_id is not None:
        reads.append(_OPEN_CASE(contact_id=contact_id))
    if code:
        reads += [_PLACE(code=code), _ROUTE(code=code, category=request.category, today=now.date())]
    taken, *results = tx.run(*reads)
    open_case = results.pop(0) if contact_id is not None else []
    if taken or open_case:
        return _through_the_orm(tx, request, contact_id=contact_id, now=now, policy=policy)
    place, rows = results if code else ([], [])
    municipality_id, country = place[0] if place else (None, None)
    tier = policy.tier(request.category, request.safe)
    found = Reach.of(rows, country) if place and request.consent else None
    if found is not None and not found.reaches_anyone:
        if contact_id is not None:
            tx.run(
                _UNROUTED(
                    municipality_id=municipality_id,
                    country=country,
                    category=request.category,
                    urgency=tier,
                    channel=request.channel,
                    created_at=now,
                )
            )
        return None, referrals.Work()
    consented = found is not None
    stamp = utcnow()
    writes = [
        _INSERT_CASE(
            reference=reference,
            contact_id=contact_id,
            category=request.category,
            municipality_id=municipality_id,
            country=country,
            urgency=tier,
            consent_at=now if consented else None,
            consent_channel=request.channel if consented else None,
            consent_wording=request.consent_wording if consented else None,
            consent_scope=found.organization_ids if found is not None else None,
            description=request.description or None,
            shared_phone=request.shared_phone,
            contact_ok=request.contact_ok,
            safe_times=request.safe_times or None,
            created_at=now,
        ),
        _EVENT(
            reference=reference,
            kind="created",
            data={"tier": tier, "channel": request.channel},
            created_at=stamp,
        ),
    ]
    if found is not None:
        wording, scope = request.consent_wording, found.organization_ids
        writes.append(
            _EVENT(
                reference=reference,
                kind="consent",
                data={"wording": wording, "organizations": scope},
                created_at=stamp,
            )
        )
        writes.append(
            _FORWARD(
                reference=reference,
                payload={"position": 0},
                priority="high" if tier == "immediate" else "default",
                created_at=now,
            )
        )
    results = tx.run(*writes)
    work = referrals.Work()
    if found is not None:
        work.outbox_ids.append(results[-1][0][0])
    return reference, work


def _through_the_orm(
    tx: Tx,
    request: CaseRequest,
    *,
    contact_id: int | None,
    now: datetime,
    policy: policies.Policy,
) -> tuple[str | None, referrals.Work]:
    session = tx.session()
    case, work = referrals.open_case(
        session,
        request,
        contact_id=contact_id,
        now=now,
        policy=policy,
        reference=cases.new_reference(session),
    )
    return (case.reference if case is not None else None), work
