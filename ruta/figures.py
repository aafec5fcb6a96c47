"""Anonymous figures for municipalities (DOMAIN.md, journey 7): requests by kind of help and
week, time to a focal point's first answer, and needs the directory has no service for.

Protection: a count below ``MIN_COUNT`` is never shown, only "<5" (``shown``), and a median is
only given over ``MIN_COUNT`` cases or more. No row or column totals are shown: with a total, a
hidden count could be worked out by subtraction. Weeks are ISO weeks (Monday to Sunday) in the
time zone given to ``compute`` (the viewer's), UTC by default.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from ruta import taxonomy
from ruta.models import (
    Case,
    Category,
    Location,
    Municipality,
    Service,
    ServiceAtLocation,
    ServiceStatus,
    UnroutedRequest,
)

__all__ = ["MIN_COUNT", "Figures", "compute", "shown", "week_of"]

MIN_COUNT = 5


def shown(count: int) -> str:
    """A count as it may be shown: itself from ``MIN_COUNT`` up, else "<5"."""
    return str(count) if count >= MIN_COUNT else f"<{MIN_COUNT}"


def week_of(moment: datetime, zone: tzinfo = UTC) -> str:
    """The ISO week (``2026-W48``) ``moment`` falls in, in ``zone``."""
    year, week, _ = moment.astimezone(zone).isocalendar()
    return f"{year}-W{week:02d}"


@dataclass
class Response:
    """Time from a request to a focal point accepting it, for one kind of help."""

    category: str
    accepted: int
    median_hours: float | None  # None below MIN_COUNT accepted requests


@dataclass
class Figures:
    weeks: list[str]
    categories: list[tuple[str, str]]  # (code, label) in the directory's order
    requests: dict[tuple[str, str], int] = field(default_factory=dict)  # (week, code) -> n
    responses: list[Response] = field(default_factory=list)
    unmet: list[tuple[str, str, int]] = field(default_factory=list)  # (place, label, n)
    #: Requests no office could receive (no focal point, no coordinator): (place, label, n).
    unrouted: list[tuple[str, str, int]] = field(default_factory=list)

    def cell(self, week: str, category: str) -> str:
        return shown(self.requests.get((week, category), 0))


def compute(
    session: Session,
    cases: Select[Any],
    *,
    now: datetime,
    weeks: int,
    municipality_id: int | None = None,
    language: str = "es",
    unrouted: Select[Any] | None = None,
    zone: tzinfo = UTC,
) -> Figures:
    """Figures over ``cases`` (a query of the cases the viewer may count) created in the last
    ``weeks`` weeks of ``zone``, optionally in one municipality; ``unrouted`` (a query of the
    ``UnroutedRequest`` rows the viewer may count) adds the requests nobody could receive."""
    first = now.astimezone(zone) - timedelta(weeks=weeks - 1)
    monday = datetime.combine(first.date() - timedelta(days=first.weekday()), time.min, zone)
    since = monday.astimezone(UTC)
    scoped = cases.with_only_columns(Case.id).subquery()
    query = select(
        Case.category_code, Case.municipality_id, Case.created_at, Case.accepted_at
    ).where(Case.id.in_(select(scoped.c.id)), Case.created_at >= since)
    if municipality_id is not None:
        query = query.where(Case.municipality_id == municipality_id)
    rows = session.execute(query).all()

    labels = taxonomy.kind_names(session, language)
    used = {row.category_code for row in rows}
    categories = [(code, label) for code, label in labels.items() if code in used]
    categories += [(code, code) for code in sorted(used - set(labels))]
    figures = Figures(
        weeks=sorted({week_of(now - timedelta(weeks=n), zone) for n in range(weeks)}),
        categories=categories,
    )
    figures.requests = dict(Counter((week_of(r.created_at, zone), r.category_code) for r in rows))

    delays: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row.accepted_at is not None:
            delays[row.category_code].append(
                (row.accepted_at - row.created_at).total_seconds() / 3600
            )
    for code, _label in categories:
        hours = delays.get(code, [])
        median = statistics.median(hours) if len(hours) >= MIN_COUNT else None
        figures.responses.append(Response(code, len(hours), median))

    served = set(
        session.execute(
            select(Location.municipality_id, Category.code)
            .join(ServiceAtLocation, ServiceAtLocation.location_id == Location.id)
            .join(Service, Service.id == ServiceAtLocation.service_id)
            .join(Category, Category.id == Service.category_id)
            .where(Service.status == ServiceStatus.ACTIVE.value)
        ).all()
    )
    places = dict(session.execute(select(Municipality.id, Municipality.name)).all())
    unmet = Counter(
        (row.municipality_id, row.category_code)
        for row in rows
        if row.municipality_id is not None
        and (row.municipality_id, row.category_code) not in served
    )
    figures.unmet = sorted(
        (places.get(place, "?"), labels.get(code, code), number)
        for (place, code), number in unmet.items()
    )
    if unrouted is not None:
        scoped_unrouted = unrouted.with_only_columns(UnroutedRequest.id).subquery()
        lost = select(UnroutedRequest.municipality_id, UnroutedRequest.category_code).where(
            UnroutedRequest.id.in_(select(scoped_unrouted.c.id)),
            UnroutedRequest.created_at >= since,
        )
        if municipality_id is not None:
            lost = lost.where(UnroutedRequest.municipality_id == municipality_id)
        counted = Counter((place, code) for place, code in session.execute(lost))
        figures.unrouted = sorted(
            (places.get(place, "?") if place else "?", labels.get(code, code), number)
            for (place, code), number in counted.items()
        )
    return figures
