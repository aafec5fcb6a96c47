"""The dashboard of work (issue 14, item 4): for each role, each line's count is what the
database holds for that role's scope, a coordinator's lines cover their country only, and each
line links to a list showing exactly that many rows.

The expected numbers are computed here in plain Python over every row, independently of the
queries the admin uses."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from ruta import clock, routing
from ruta.db import db
from ruta.models import (
    Broadcast,
    Case,
    Contact,
    DataSharingAgreement,
    FocalPoint,
    Message,
    Municipality,
    Question,
    Referral,
)
from tests.admin.conftest import Browser, login, open_forwarded_case

LINE = re.compile(r'<li data-line="([a-z_]+)" data-count="(\d+)"><a href="([^"]+)">([^<]+)</a>')


def dashboard(client: Any) -> dict[str, tuple[int, str, str]]:
    html = client.get("/admin/").get_data(as_text=True)
    return {
        key: (int(n), url.replace("&amp;", "&"), text) for key, n, url, text in LINE.findall(html)
    }


@pytest.fixture()
def two_countries(app: Flask) -> Iterator[dict[str, Any]]:
    """Work waiting in Costa Rica and in Honduras: cases in every state, a failed alert, open
    questions, broadcasts awaiting approval, and an agreement about to expire."""
    upala = open_forwarded_case("cr-upala", "+50688110001")[1]  # waits for Upala's focal point
    chiles = open_forwarded_case("cr-los-chiles", "+50688110002")[1]
    failed = open_forwarded_case("cr-upala", "+50688110003", category="food")[1]
    unsent = open_forwarded_case("cr-la-cruz", "+50688110004")[1]
    closed = open_forwarded_case("cr-upala", "+50688110005")[1]
    honduras = [open_forwarded_case("hn-san-pedro-sula", f"+5048811000{i}")[1] for i in (6, 7, 8)]
    now = clock.now()
    with db.transaction() as session:
        by_ref = {c.reference: c for c in session.scalars(select(Case))}
        by_ref[chiles].overdue = True
        by_ref[honduras[0]].overdue = True
        by_ref[closed].status, by_ref[closed].closed_at = "closed", now
        for ref in (unsent, honduras[1]):  # nobody received these
            by_ref[ref].status = "new"
        for ref in (failed, honduras[2]):
            session.execute(
                update(Message)
                .where(
                    Message.id.in_(
                        select(Referral.message_id).where(Referral.case_id == by_ref[ref].id)
                    )
                )
                .values(status="failed", error_code="30003")
            )
        # A failed alert on a closed case is no longer work.
        session.execute(
            update(Message)
            .where(
                Message.id.in_(
                    select(Referral.message_id).where(Referral.case_id == by_ref[closed].id)
                )
            )
            .values(status="failed")
        )
        contact = session.scalar(select(Contact.id).where(Contact.id == by_ref[upala].contact_id))
        for i, (country, status) in enumerate(
            [("CR", "open"), ("CR", "open"), ("CR", "answered"), ("HN", "open")]
        ):
            session.add(
                Question(
                    reference=f"QD{i}X",
                    contact_id=contact,
                    channel="twilio",
                    language="es",
                    country=country,
                    text="una pregunta",
                    status=status,
                )
            )
        places = {m.code: m.id for m in session.scalars(select(Municipality))}
        for place, status in (
            ("cr-upala", "awaiting_approval"),
            ("hn-san-pedro-sula", "awaiting_approval"),
            ("hn-san-pedro-sula", "awaiting_approval"),
            ("cr-upala", "draft"),
        ):
            session.add(
                Broadcast(
                    title="Feria",
                    municipality_id=places[place],
                    texts={"es": "Feria el jueves"},
                    status=status,
                    created_by="admin@ruta.test",
                )
            )
        # The agreement of Upala's focal point's organisation runs out in 10 days.
        org = session.scalar(
            select(FocalPoint.organization_id).where(FocalPoint.name.like("Punto focal Upala%"))
        )
        agreement = session.scalar(
            select(DataSharingAgreement)
            .where(DataSharingAgreement.organization_id == org)
            .order_by(DataSharingAgreement.expires_on.desc())
        )
        assert agreement is not None
        saved = (agreement.id, agreement.expires_on)
        agreement.expires_on = now.date() + timedelta(days=10)
    yield {"upala": upala, "chiles": chiles, "failed": failed, "honduras": honduras}
    with db.transaction() as session:
        session.execute(delete_questions())
        session.execute(
            update(DataSharingAgreement)
            .where(DataSharingAgreement.id == saved[0])
            .values(expires_on=saved[1])
        )


def delete_questions() -> Any:
    from sqlalchemy import delete

    return delete(Question).where(Question.reference.like("QD%"))


def expected(
    role: str, country: str | None = None, focal_point: int | None = None
) -> dict[str, int]:
    """Each line's count for a user, computed over every row in Python."""
    now = clock.now()
    with db.transaction() as session:
        cases = list(session.scalars(select(Case)))
        sent_to: dict[int, set[int]] = {}
        failed: set[int] = set()
        for referral, status in session.execute(
            select(Referral, Message.status).join(Message, Message.id == Referral.message_id)
        ):
            sent_to.setdefault(referral.case_id, set()).add(referral.focal_point_id)
            if status in ("failed", "suppressed"):
                failed.add(referral.case_id)
        questions = list(session.scalars(select(Question)))
        places = {m.id: m.country for m in session.scalars(select(Municipality))}
        broadcasts = list(session.scalars(select(Broadcast)))
        kinds = routing.published_kinds(session) or ["health"]
        from admin.routing import HELP_CATEGORIES

        kinds = routing.published_kinds(session) or list(HELP_CATEGORIES)
        found = routing.gaps(session, kinds, now.date(), country if role == "coordinator" else None)

    def mine(case: Case) -> bool:
        if role == "admin":
            return True
        if role == "coordinator":
            return case.country == country
        return focal_point in sent_to.get(case.id, set()) or focal_point in (
            case.accepted_by_id,
            case.assigned_focal_point_id,
        )

    visible = [c for c in cases if mine(c)]
    open_ = [c for c in visible if c.status != "closed"]
    counts: dict[str, int] = {}
    if role in ("admin", "coordinator"):
        # A focal point sees only what reached them: "reached nobody" is never theirs to see.
        counts["unrouted"] = sum(c.status == "new" for c in visible)
    if role in ("admin", "coordinator", "focal_point"):
        counts["unaccepted"] = sum(c.status == "forwarded" for c in visible)
        counts["overdue"] = sum(
            c.overdue or (c.deadline_at is not None and c.deadline_at <= now) for c in open_
        )
        counts["failed_alerts"] = sum(c.id in failed for c in open_)
    if role in ("admin", "coordinator"):
        counts["questions"] = sum(
            q.status == "open" and (role == "admin" or q.country == country) for q in questions
        )
        counts["broadcasts"] = sum(
            b.status == "awaiting_approval"
            and (role == "admin" or places.get(b.municipality_id or 0) == country)
            for b in broadcasts
        )
    if role in ("admin", "coordinator", "viewer"):
        pending = [(a, d) for a, _, d in found.expiring if a.id not in found.renewed]
        counts["unrouted_places"] = len(found.unrouted)
        counts["no_coordinator"] = len(found.no_coordinator)
        counts["expiring_agreements"] = sum(d >= 0 for _, d in pending)
        counts["expired_agreements"] = sum(d < 0 for _, d in pending)
    return counts


def rows_behind(client: Any, url: str) -> int:
    html = client.get(url).get_data(as_text=True)
    if "/admin/cases/" in url:
        return html.count('<tr data-reference="')
    if "/admin/questions/" in url:
        return len(re.findall(r'href="/admin/questions/\d+"', html))
    if "/admin/broadcasts/" in url:
        return len(set(re.findall(r'href="/admin/broadcasts/(\d+)"', html)))
    return -1  # routing lines link to the routing page's warnings


def test_each_roles_counts_match_the_database(
    app: Flask, accounts: dict[str, str], two_countries: dict[str, Any]
) -> None:
    with db.transaction() as session:
        upala_fp = session.scalar(
            select(FocalPoint.id).where(FocalPoint.name.like("Punto focal Upala%"))
        )
    seen = {}
    for role, kwargs in (
        ("admin", {}),
        ("coordinator", {"country": "CR"}),
        ("focal_point", {"focal_point": upala_fp}),
        ("viewer", {}),
        ("flow_editor", {}),
        ("directory_editor", {}),
    ):
        client = Browser(app)
        login(client, accounts[role])
        lines = dashboard(client)
        want = expected(role, **kwargs)
        assert {key: n for key, (n, _url, _text) in lines.items()} == want, role
        for key, (n, url, text) in lines.items():
            assert str(n) in text  # a sentence with its count
            behind = rows_behind(client, url)
            if behind >= 0:
                assert behind == n, (role, key, url)
        seen[role] = lines
    # The data in two countries make the scopes differ where they must.
    admin, coordinator = seen["admin"], seen["coordinator"]
    assert (
        admin["unaccepted"][0] > coordinator["unaccepted"][0] > seen["focal_point"]["unaccepted"][0]
    )
    assert coordinator["overdue"][0] == 1 and admin["overdue"][0] == 2
    assert coordinator["unrouted"][0] == 1 and admin["unrouted"][0] == 2
    assert coordinator["failed_alerts"][0] == 1 and admin["failed_alerts"][0] == 2
    assert coordinator["questions"][0] == 2 and admin["questions"][0] == 3
    assert coordinator["broadcasts"][0] == 1 and admin["broadcasts"][0] == 3
    assert coordinator["expiring_agreements"][0] >= 1
    assert "questions" not in seen["focal_point"] and "broadcasts" not in seen["viewer"]
    assert seen["flow_editor"] == {} and seen["directory_editor"] == {}


def test_a_coordinators_lists_behind_the_lines_hold_their_country_only(
    app: Flask, accounts: dict[str, str], two_countries: dict[str, Any]
) -> None:
    client = Browser(app)
    login(client, accounts["coordinator"])
    lines = dashboard(client)
    for key in ("unrouted", "unaccepted", "overdue", "failed_alerts"):
        html = client.get(lines[key][1]).get_data(as_text=True)
        assert not any(ref in html for ref in two_countries["honduras"]), key
    assert two_countries["chiles"] in client.get(lines["overdue"][1]).get_data(as_text=True)
    assert two_countries["failed"] in client.get(lines["failed_alerts"][1]).get_data(as_text=True)


def test_the_dashboard_speaks_spanish(
    app: Flask, accounts: dict[str, str], two_countries: dict[str, Any]
) -> None:
    app.config["RUTA_ADMIN_LANGUAGE"] = "es"
    try:
        client = Browser(app)
        login(client, accounts["coordinator"])
        lines = dashboard(client)
    finally:
        app.config["RUTA_ADMIN_LANGUAGE"] = "en"
    assert lines["unaccepted"][2].endswith("esperan ser aceptadas")
    assert lines["overdue"][2] == "1 solicitud está vencida"
    assert "preguntas esperan respuesta" in lines["questions"][2]
