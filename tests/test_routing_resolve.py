"""``routing.resolve`` in one query gives the stages its definition gives: each chain position's
eligible focal points, then the country's eligible coordinators (active, with an agreement of
their organisation in force), over every place and kind of the demo data, with a focal point
switched off and an agreement expired."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import event, select, update

from ruta import clock, routing, taxonomy
from ruta.db import db
from ruta.models import DataSharingAgreement, FocalPoint, Municipality, Organization


def by_definition(session: Any, place: Municipality, kind: str, today: Any) -> list[list[int]]:
    in_force = routing.organizations_in_force(session, today)
    stages = [routing.eligible(p, in_force) for p in routing.chain(session, place.id, kind)]
    stages.append(routing.eligible(routing.coordinators(session, place.country), in_force))
    return [[fp.id for fp in stage] for stage in stages]


def every_route(today: Any) -> list[tuple[str, str, list[list[int]], list[list[int]], int]]:
    """(place, kind, resolved, by definition, statements resolve sent) for every pair."""
    found = []
    with db.transaction() as session:
        statements: list[str] = []

        def count(*_args: Any) -> None:
            statements.append("")

        engine = session.get_bind()
        for place in session.scalars(select(Municipality)):
            for kind in taxonomy.load().help_codes():
                statements.clear()
                event.listen(engine, "before_cursor_execute", count)
                try:
                    route = routing.resolve(session, place.id, kind, place.country, today)
                finally:
                    event.remove(engine, "before_cursor_execute", count)
                resolved = [[fp.id for fp in stage] for stage in route.stages]
                expected = by_definition(session, place, kind, today)
                found.append((place.code, kind, resolved, expected, len(statements)))
    return found


def test_resolve_gives_the_stages_of_its_definition_in_one_statement(app: Flask) -> None:
    today = clock.now().date()
    routes = every_route(today)
    assert routes and any(len(r[2]) > 2 for r in routes)  # chains of several positions
    for place, kind, resolved, expected, statements in routes:
        assert resolved == expected, (place, kind)
        assert statements == 1, (place, kind)

    with db.transaction() as session:
        upala_first = session.scalar(
            select(FocalPoint).where(FocalPoint.name.like("Punto focal Upala%"))
        )
        assert upala_first is not None
        upala_first.active = False
        red = session.scalar(select(Organization.id).where(Organization.name.like("Red Comunit%")))
        agreements = {
            a.id: a.expires_on
            for a in session.scalars(
                select(DataSharingAgreement).where(DataSharingAgreement.organization_id == red)
            )
        }
        session.execute(
            update(DataSharingAgreement)
            .where(DataSharingAgreement.id.in_(list(agreements)))
            .values(expires_on=today - timedelta(days=1))
        )
    try:
        changed = every_route(today)
        for place, kind, resolved, expected, _ in changed:
            assert resolved == expected, (place, kind)
        assert [r[2] for r in changed] != [r[2] for r in routes]  # the changes were seen
        upala = next(r[2] for r in changed if r[0] == "cr-upala" and r[1] == "health")
        assert upala_first.id not in upala[0]
    finally:
        with db.transaction() as session:
            session.execute(
                update(FocalPoint).where(FocalPoint.id == upala_first.id).values(active=True)
            )
            for agreement_id, expires_on in agreements.items():
                session.execute(
                    update(DataSharingAgreement)
                    .where(DataSharingAgreement.id == agreement_id)
                    .values(expires_on=expires_on)
                )
