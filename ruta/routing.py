"""Who can receive a request for help, decided before anything is promised to the person.

A (municipality, kind of help) resolves to *stages*: the positions of its routing chain, then the
country's coordinators (the deployment's intake for places and kinds no chain covers). A focal
point counts only while active and while its organisation has a data-sharing agreement in force.
The flows ask for consent only when some stage has someone (``resolve``), and name the first
organisation; ``gaps`` lists what resolves to nobody, for ``ruta routing check`` and the admin.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Select, and_, exists, or_, select
from sqlalchemy.orm import Session, selectinload

from flows.loader import parse_flow
from flows.model import Flow
from ruta.models import (
    DataSharingAgreement,
    FocalPoint,
    Municipality,
    Organization,
    RoutingChain,
    RoutingStep,
)

#: Agreements expiring this soon (or already expired) are gaps to fix.
EXPIRY_WARNING = timedelta(days=30)


def chain(session: Session, municipality_id: int | None, category: str) -> list[list[FocalPoint]]:
    """The focal points of a chain by position (all of them, eligible or not)."""
    if municipality_id is None:
        return []
    found = session.scalar(
        select(RoutingChain)
        .where(
            RoutingChain.municipality_id == municipality_id,
            RoutingChain.category_code == category,
        )
        .options(selectinload(RoutingChain.steps).selectinload(RoutingStep.focal_point))
    )
    if found is None:
        return []
    positions: dict[int, list[FocalPoint]] = {}
    for step in found.steps:
        positions.setdefault(step.position, []).append(step.focal_point)
    return [positions[p] for p in sorted(positions)]


def coordinators(session: Session, country: str | None) -> list[FocalPoint]:
    if not country:
        return []
    return list(
        session.scalars(
            select(FocalPoint)
            .where(FocalPoint.is_coordinator.is_(True), FocalPoint.country == country)
            .order_by(FocalPoint.id)
        )
    )


def organizations_in_force(session: Session, today: date) -> set[int]:
    return set(
        session.scalars(
            select(DataSharingAgreement.organization_id).where(
                DataSharingAgreement.expires_on >= today
            )
        )
    )


def eligible(fps: Iterable[FocalPoint], in_force: set[int]) -> list[FocalPoint]:
    return [fp for fp in fps if fp.active and fp.organization_id in in_force]


@dataclass
class Route:
    """The stages of one (municipality, kind of help), each already filtered to who can receive
    now. Stage ``i`` is chain position ``i``; the last stage is the coordinators."""

    stages: list[list[FocalPoint]] = field(default_factory=list)

    @property
    def coordinator_stage(self) -> int:
        return len(self.stages) - 1

    @property
    def reaches_anyone(self) -> bool:
        return any(self.stages)

    def first(self) -> list[FocalPoint]:
        return next((stage for stage in self.stages if stage), [])

    def organization_ids(self) -> list[int]:
        return sorted({fp.organization_id for stage in self.stages for fp in stage})

    def first_organizations(self) -> list[str]:
        names: list[str] = []
        for fp in self.first():
            if fp.organization.name not in names:
                names.append(fp.organization.name)
        return names


def resolve(
    session: Session, municipality_id: int | None, category: str, country: str | None, today: date
) -> Route:
    """One query: every focal point of the chain (with its position) and every coordinator of
    the country, each with whether its organisation has an agreement in force. It runs for each
    request a person makes (before consent and again when the case is opened), so it is one
    round trip rather than the five of ``chain``, ``coordinators`` and
    ``organizations_in_force``; the stages are the same."""
    chain_id = (
        select(RoutingChain.id)
        .where(
            RoutingChain.municipality_id == municipality_id,
            RoutingChain.category_code == category,
        )
        .scalar_subquery()
    )
    rows = session.execute(
        stages_query([FocalPoint], chain_id, country, today, coordinators=bool(country))
    ).all()
    positions: dict[int, list[FocalPoint]] = {}
    intake: dict[int, FocalPoint] = {}
    for fp, position, in_force in rows:
        if position is not None:
            positions.setdefault(position, [])
            if fp.active and in_force:
                positions[position].append(fp)
        if country and fp.is_coordinator and fp.country == country and fp.active and in_force:
            intake[fp.id] = fp
    stages = [positions[p] for p in sorted(positions)]
    stages.append([intake[key] for key in sorted(intake)])
    return Route(stages)


def stages_query(
    columns: Sequence[Any], chain_id: Any, country: Any, today: Any, *, coordinators: bool = True
) -> Select[Any]:
    """``columns`` of every focal point of the chain ``chain_id``, then its position (None for
    a coordinator outside the chain) and whether its organisation has an agreement in force
    ``today``; with ``coordinators``, every coordinator of ``country`` too. ``resolve`` and
    ``ruta/opening.py`` (by the place's code, with the other reads of a new case) ask it."""
    agreed = (
        exists()
        .where(
            DataSharingAgreement.organization_id == FocalPoint.organization_id,
            DataSharingAgreement.expires_on >= today,
        )
        .label("agreed")
    )
    in_chain = RoutingStep.id.is_not(None)
    coordinating = and_(FocalPoint.is_coordinator.is_(True), FocalPoint.country == country)
    return (
        select(*columns, RoutingStep.position, agreed)
        .select_from(FocalPoint)
        .outerjoin(
            RoutingStep,
            and_(RoutingStep.focal_point_id == FocalPoint.id, RoutingStep.chain_id == chain_id),
        )
        .where(or_(in_chain, coordinating) if coordinators else in_chain)
        .order_by(RoutingStep.position, RoutingStep.id, FocalPoint.id)
    )


def resolve_place(session: Session, municipality_code: str, category: str, today: date) -> Route:
    place = session.scalar(select(Municipality).where(Municipality.code == municipality_code))
    if place is None:
        return Route([[]])
    return resolve(session, place.id, category, place.country, today)


# --- gaps ------------------------------------------------------------------------------------


@dataclass
class Gaps:
    unrouted: list[tuple[Municipality, list[str]]]  # municipality, kinds resolving to nobody
    expiring: list[tuple[DataSharingAgreement, str, int]]  # agreement, organisation, days left
    no_coordinator: list[str]  # countries (of municipalities) without an eligible coordinator
    #: Agreements of ``expiring`` whose organisation already has a later one in force: listed,
    #: but not a gap.
    renewed: set[int] = field(default_factory=set)

    @property
    def any(self) -> bool:
        pending = [a for a, _, _ in self.expiring if a.id not in self.renewed]
        return bool(self.unrouted or pending or self.no_coordinator)


def gaps(session: Session, kinds: Iterable[str], today: date, country: str | None = None) -> Gaps:
    """What resolves to nobody, what is about to, and which countries have no intake."""
    kinds = list(kinds)
    places = select(Municipality).order_by(Municipality.country, Municipality.name)
    if country is not None:
        places = places.where(Municipality.country == country)
    municipalities = list(session.scalars(places))
    in_force = organizations_in_force(session, today)
    countries = sorted({m.country for m in municipalities})
    intake = {c: bool(eligible(coordinators(session, c), in_force)) for c in countries}
    unrouted = []
    for place in municipalities:
        if intake[place.country]:
            continue  # the coordinator receives whatever the chains do not
        missing = [
            kind
            for kind in kinds
            if not any(eligible(p, in_force) for p in chain(session, place.id, kind))
        ]
        if missing:
            unrouted.append((place, missing))
    agreements = (
        select(DataSharingAgreement, Organization.name)
        .join(Organization, Organization.id == DataSharingAgreement.organization_id)
        .where(DataSharingAgreement.expires_on <= today + EXPIRY_WARNING)
        .order_by(DataSharingAgreement.expires_on)
    )
    if country is not None:
        # A coordinator sees the agreements of organisations with focal points in their country.
        agreements = agreements.where(
            DataSharingAgreement.organization_id.in_(
                select(FocalPoint.organization_id).where(FocalPoint.country == country)
            )
        )
    expiring = [
        (agreement, name, (agreement.expires_on - today).days)
        for agreement, name in session.execute(agreements)
    ]
    renewed = {a.id for a, _, _ in expiring if _renewed(session, a, today)}
    return Gaps(unrouted, expiring, [c for c in countries if not intake[c]], renewed)


def _renewed(session: Session, agreement: DataSharingAgreement, today: date) -> bool:
    return (
        session.scalar(
            select(DataSharingAgreement.id)
            .where(
                DataSharingAgreement.organization_id == agreement.organization_id,
                DataSharingAgreement.id != agreement.id,
                DataSharingAgreement.expires_on > today + EXPIRY_WARNING,
            )
            .limit(1)
        )
        is not None
    )


# --- what the flows offer --------------------------------------------------------------------

#: Actions whose ``category`` argument is a kind of help a person can ask to be referred for.
ROUTED_ACTIONS = ("route_request", "create_case")


def offered_kinds(flows: Iterable[Flow]) -> list[str]:
    """The kinds of help people can ask for: the option values of the menus whose answer
    feeds a routed action's ``category`` argument, in the flows' order."""
    kinds: list[str] = []
    for flow in flows:
        names = {
            str((node.spec.get("args") or {}).get("category", "")).strip("{} ")
            for node in flow.nodes.values()
            if node.kind == "action" and node.spec.get("action") in ROUTED_ACTIONS
        }
        for node in flow.nodes.values():
            if node.kind == "menu" and node.spec.get("save_as") in names:
                for option in node.spec.get("options") or []:
                    value = option.get("value") if isinstance(option, dict) else None
                    if isinstance(value, str) and value not in kinds:
                        kinds.append(value)
    return kinds


def published_kinds(session: Session) -> list[str]:
    """``offered_kinds`` of the flows people are talking to now (the published versions)."""
    from ruta.flowstore import latest_versions

    return offered_kinds(
        parse_flow(row.source, version=row.version, where=row.flow_key)
        for row in latest_versions(session).values()
    )


def describe(found: Gaps) -> list[str]:
    """One line a gap, in words an operator acts on."""
    lines = [
        f"{place.name} ({place.country}, {place.code}): nobody receives {', '.join(kinds)}"
        for place, kinds in found.unrouted
    ]
    lines += [
        f"{country}: no active coordinator with an agreement in force"
        for country in found.no_coordinator
    ]
    for agreement, organization, days in found.expiring:
        when = (
            f"expired on {agreement.expires_on}"
            if days < 0
            else f"expires on {agreement.expires_on} ({days} days)"
        )
        if agreement.id in found.renewed:
            continue  # history: a later agreement of the organisation is in force
        lines.append(f"agreement {agreement.reference} of {organization} {when}")
    return lines
