"""A case opened on the webhook's lean path (``ruta/opening.py``, issue 11) is the case
``referrals.open_case`` opens through the ORM: the same row, history and outbox event for every
kind of request, the same routing decision over every place and kind, the unmet need counted
the same; a person with an open case and a reference already drawn go to the ORM's rules; and
on PostgreSQL it costs two round trips and no ORM session."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from flows.services import CaseRequest
from ruta import cases, clock, contacts, opening, referrals, routing, sql, taxonomy
from ruta import policy as policies
from ruta.db import db
from ruta.models import (
    Case,
    CaseEvent,
    DataSharingAgreement,
    Municipality,
    OutboxEvent,
    UnroutedRequest,
)
from tests.conftest import TwilioPhone
from tests.gateway.test_lean_path import orm_sessions as orm_sessions  # a fixture
from tests.gateway.test_lean_path import round_trips as round_trips  # a fixture
from tests.test_referrals import ask_for_help, ask_help_answers

CONSENTING = CaseRequest(
    category="health",
    municipality="cr-upala",
    safe=True,
    consent=True,
    consent_wording="help:v1:consent_focal_points",
    channel="sms",
    description="Necesito un medico para mi hija",
    shared_phone=True,
    safe_times="afternoon",
    contact_ok=True,
)
REQUESTS = {
    "consenting": CONSENTING,
    "not safe: immediate": dataclasses.replace(CONSENTING, safe=False, category="safety"),
    "no consent": dataclasses.replace(CONSENTING, consent=False),
    "unknown place": dataclasses.replace(CONSENTING, municipality="xx-nowhere"),
    "no place": dataclasses.replace(CONSENTING, municipality=None),
    "said nothing more": dataclasses.replace(
        CONSENTING, description=None, shared_phone=None, safe_times=None, contact_ok=False
    ),
    "ussd, documents": dataclasses.replace(
        CONSENTING, channel="ussd", category="documents", municipality="hn-san-pedro-sula"
    ),
}
#: The requests that reach someone: forwarded once committed.
FORWARDED = {"consenting", "not safe: immediate", "said nothing more", "ussd, documents"}
#: What differs between two cases however they were opened.
OWN = {"id", "reference", "contact_id", "created_at", "consent_at"}


def new_contact(number: str) -> int:
    with db.transaction() as session:
        return contacts.lock_contact(session, number).id


def lean(request: CaseRequest, contact_id: int | None, now: datetime) -> tuple[str | None, Any]:
    with sql.transaction(db.bound()) as tx:
        return opening.open_case(
            tx, request, contact_id=contact_id, now=now, policy=policies.load()
        )


def through_the_orm(request: CaseRequest, contact_id: int | None, now: datetime) -> str | None:
    with db.transaction() as session:
        case, _ = referrals.open_case(
            session,
            request,
            contact_id=contact_id,
            now=now,
            policy=policies.load(),
            reference=cases.new_reference(session),
        )
        return case.reference if case is not None else None


def stored(session: Session, reference: str) -> dict[str, Any]:
    """The case as the admin reads it, with its history and outbox events, minus its own ids."""
    case = session.scalar(select(Case).where(Case.reference == reference))
    assert case is not None
    row = {c.key: getattr(case, c.key) for c in Case.__table__.columns if c.key not in OWN}
    row["consented"] = case.consent_at is not None
    row["events"] = [
        (e.kind, e.actor, e.data)
        for e in session.scalars(
            select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)
        )
    ]
    row["outbox"] = [
        (e.kind, e.payload, e.priority, e.dispatched_at)
        for e in session.scalars(select(OutboxEvent).where(OutboxEvent.case_id == case.id))
    ]
    return row


@pytest.mark.parametrize("name", list(REQUESTS))
def test_the_lean_path_opens_the_case_the_orm_opens(app: Flask, name: str) -> None:
    request = REQUESTS[name]
    now = clock.now()
    ours, work = lean(request, new_contact("+50688401001"), now)
    theirs = through_the_orm(request, new_contact("+50688401002"), now)
    assert ours is not None and theirs is not None and ours != theirs
    with db.transaction() as session:
        mine, expected = stored(session, ours), stored(session, theirs)
        assert mine == expected
        events = session.scalars(
            select(OutboxEvent.id).where(
                OutboxEvent.case_id
                == select(Case.id).where(Case.reference == ours).scalar_subquery()
            )
        ).all()
    assert work.outbox_ids == list(events)  # handed to RQ after commit
    assert bool(events) == (name in FORWARDED)
    if name == "consenting":  # the case holds what the person said, encrypted as the ORM does
        assert mine["description"] == CONSENTING.description
        assert mine["consent_scope"] and mine["urgency"] == "standard"
        with db.transaction() as session:
            stored_text = session.execute(
                text("SELECT description FROM cases WHERE reference = :ref"), {"ref": ours}
            ).scalar_one()
        assert stored_text and "medico" not in stored_text  # the database sees ciphertext
    if name == "not safe: immediate":
        assert mine["urgency"] == "immediate" and expected["outbox"][0][2] == "high"


@pytest.fixture()
def nobody_in_force(app: Flask) -> Iterator[None]:
    """Every data-sharing agreement expired yesterday: no request reaches anyone."""
    today = clock.now().date()
    with db.transaction() as session:
        kept = dict(
            session.execute(select(DataSharingAgreement.id, DataSharingAgreement.expires_on)).all()
        )
        session.execute(update(DataSharingAgreement).values(expires_on=today - timedelta(days=1)))
    try:
        yield
    finally:
        with db.transaction() as session:
            for agreement_id, expires_on in kept.items():
                session.execute(
                    update(DataSharingAgreement)
                    .where(DataSharingAgreement.id == agreement_id)
                    .values(expires_on=expires_on)
                )


def unrouted() -> list[tuple[Any, ...]]:
    with db.transaction() as session:
        return [
            tuple(row)
            for row in session.execute(
                select(
                    UnroutedRequest.municipality_id,
                    UnroutedRequest.country,
                    UnroutedRequest.category_code,
                    UnroutedRequest.urgency,
                    UnroutedRequest.channel,
                ).order_by(UnroutedRequest.id)
            )
        ]


def test_a_request_nobody_can_receive_opens_nothing_and_is_counted_as_the_orm_counts_it(
    nobody_in_force: None,
) -> None:
    now = clock.now()
    before = unrouted()
    assert lean(CONSENTING, new_contact("+50688401003"), now) == (None, referrals.Work())
    assert through_the_orm(CONSENTING, new_contact("+50688401004"), now) is None
    counted = unrouted()[len(before) :]
    assert len(counted) == 2 and counted[0] == counted[1]
    assert counted[0][2:] == ("health", "standard", "sms")
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 0


def test_who_can_receive_is_what_routing_resolve_says_over_every_place_and_kind(
    app: Flask,
) -> None:
    today = clock.now().date()
    seen = set()
    with db.transaction() as session:
        places = list(session.scalars(select(Municipality)))
    for place in places:
        for kind in taxonomy.load().help_codes():
            with sql.transaction(db.bound()) as tx:
                found = opening.reach(tx, place.code, kind, today)
            with db.transaction() as session:
                route = routing.resolve(session, place.id, kind, place.country, today)
            assert found is not None
            assert found.organization_ids == route.organization_ids(), (place.code, kind)
            assert found.reaches_anyone == route.reaches_anyone
            seen.add(tuple(found.organization_ids))
    assert len(seen) >= 2  # places differ in who receives them
    with sql.transaction(db.bound()) as tx:
        assert opening.reach(tx, "xx-nowhere", "health", today) is None


def test_a_person_with_an_open_case_and_a_reference_already_drawn_go_by_the_orm_rules(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = clock.now()
    contact_id = new_contact("+50688401005")
    first, work = lean(REQUESTS["no consent"], contact_id, now)
    assert first is not None and work.outbox_ids == []
    # Completed by a request with consent: the same case, its kind updated, forwarded.
    again, work = lean(dataclasses.replace(CONSENTING, category="documents"), contact_id, now)
    assert again == first and len(work.outbox_ids) == 1
    with db.transaction() as session:
        case = session.scalar(select(Case).where(Case.reference == first))
        assert case is not None and case.category_code == "documents" and case.consent_at
        case.status = "forwarded"
    # Once forwarded, another request is answered with the open case; nothing forwarded again.
    third, work = lean(CONSENTING, contact_id, now)
    assert third == first and work == referrals.Work()
    # A drawn reference that a case already has: another one is drawn.
    draws = iter([first])
    monkeypatch.setattr(opening, "new_reference", lambda: next(draws))
    other, work = lean(CONSENTING, new_contact("+50688401006"), now)
    assert other is not None and other != first and work.outbox_ids
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 2


def test_opening_a_case_is_two_round_trips_without_the_orm(
    app: Flask, round_trips: list[list[str]], orm_sessions: list[Session]
) -> None:
    contact_id = new_contact("+50688401007")
    lean(CONSENTING, new_contact("+50688401008"), clock.now())  # statements prepared
    with sql.transaction(db.bound()) as tx:
        round_trips.clear()
        orm_sessions.clear()
        reference, work = opening.open_case(
            tx, CONSENTING, contact_id=contact_id, now=clock.now(), policy=policies.load()
        )
        assert reference is not None and work.outbox_ids
        assert len(round_trips) == 2, round_trips
        assert orm_sessions == []


def test_a_second_request_before_the_first_is_handed_over_forwards_it_once(app: Flask) -> None:
    """A person whose consented request is still waiting for the drain asks again (another
    phone, a USSD session and an SMS at once): the same case, no second forward event, which
    would alert the same focal points twice once the first had moved the case on."""
    now = clock.now()
    contact_id = new_contact("+50688401009")
    first, work = lean(CONSENTING, contact_id, now)
    assert first is not None and len(work.outbox_ids) == 1
    again, more = lean(CONSENTING, contact_id, now)
    assert again == first and more.outbox_ids == []
    with db.transaction() as session:
        pending = session.scalars(
            select(OutboxEvent.id).where(OutboxEvent.dispatched_at.is_(None))
        ).all()
    assert list(pending) == work.outbox_ids


def test_the_answer_that_opens_a_case_takes_the_lean_path_in_four_round_trips(
    phone: TwilioPhone, round_trips: list[list[str]], orm_sessions: list[Session]
) -> None:
    """Over the webhook: the person's last answer locks and reads (1), opens the case (2) and
    writes the reply and the state (1), with no ORM session."""
    ask_for_help(TwilioPhone(phone.client, "+50688401010"))  # statements prepared, caches warm
    *answers, last = ask_help_answers()
    for answer in answers:
        phone.text(answer)
    round_trips.clear()
    orm_sessions.clear()
    reply = phone.text(last)
    assert "Referencia:" in reply
    assert len(round_trips) == 4, round_trips
    assert orm_sessions == []
    with db.transaction() as session:
        case = session.scalar(
            select(Case).where(Case.reference == reply.split("Referencia: ")[1][:5])
        )
        assert case is not None and case.consent_at is not None
