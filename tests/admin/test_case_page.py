"""The inbox and the case page for municipal staff (issue 14): search by reference, filters kept
across pages, local times (item 3: a Honduras case in Honduras time), alert states in words,
internal notes (encrypted, audited, never sent), the timeline in sentences, and "Reassign to"
limited to the case's chain and country."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from sqlalchemy import select, text, update

from ruta.db import db
from ruta.models import AuditEntry, Case, CaseEvent, CaseNote, FocalPoint, Message, Referral
from tests.admin.conftest import Browser, csrf_token, login, open_forwarded_case
from tests.conftest import case_by_reference


def focal_point_id(name_prefix: str) -> int:
    with db.transaction() as session:
        found = session.scalar(select(FocalPoint.id).where(FocalPoint.name.like(f"{name_prefix}%")))
        assert found is not None
        return found


def post(client: Any, url: str, page_url: str, **data: Any) -> Any:
    token = csrf_token(client.get(page_url).get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, **data})


def audited(action: str, reference: str) -> list[AuditEntry]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == action, AuditEntry.object_id == reference
                )
            )
        )


def listed(html: str) -> list[str]:
    return re.findall(r'<tr data-reference="([A-Z0-9]+)">', html)


# --- search, filters, pages ------------------------------------------------------------------


def test_a_case_is_found_by_its_reference_however_it_is_typed(
    app: Flask, accounts: dict[str, str]
) -> None:
    wanted = open_forwarded_case("cr-upala", "+50688220001")[1]
    other = open_forwarded_case("cr-upala", "+50688220002")[1]
    client = Browser(app)
    login(client, accounts["coordinator"])
    spaced = f"{wanted[:2].lower()} {wanted[2:].lower()}"  # "r7 k2p"
    for typed in (wanted, wanted.lower(), spaced, f" {wanted} "):
        html = client.get("/admin/cases/", query_string={"q": typed}).get_data(as_text=True)
        assert listed(html) == [wanted], typed
        assert "1 case with the reference" in html
    # A reference outside the user's scope finds nothing, like one that does not exist.
    honduras = open_forwarded_case("hn-san-pedro-sula", "+50488220003")[1]
    html = client.get("/admin/cases/", query_string={"q": honduras}).get_data(as_text=True)
    assert listed(html) == [] and "No case you can see has the reference" in html
    # Exact: a prefix is not a match.
    html = client.get("/admin/cases/", query_string={"q": wanted[:3]}).get_data(as_text=True)
    assert other not in listed(html) and wanted not in listed(html)


def test_pages_keep_the_filters(app: Flask, accounts: dict[str, str]) -> None:
    import admin.cases

    refs = [open_forwarded_case("cr-upala", f"+5068823000{i}")[1] for i in range(5)]
    open_forwarded_case("cr-los-chiles", "+50688230009")
    client = Browser(app)
    login(client, accounts["admin"])
    size, admin.cases.PAGE_SIZE = admin.cases.PAGE_SIZE, 2
    try:
        first = client.get("/admin/cases/?municipality=cr-upala&status=forwarded")
        html = first.get_data(as_text=True)
        assert "Page 1 of 3" in html
        older = re.search(r'href="([^"]+)" rel="next"', html)
        assert older is not None
        url = older.group(1).replace("&amp;", "&")
        assert "municipality=cr-upala" in url and "status=forwarded" in url and "page=2" in url
        seen = listed(html)
        while older:
            html = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
            seen += listed(html)
            older = re.search(r'href="([^"]+)" rel="next"', html)
    finally:
        admin.cases.PAGE_SIZE = size
    assert sorted(seen) == sorted(refs)  # every Upala case once, no Los Chiles one


def test_bad_filters_are_no_error(app: Flask, accounts: dict[str, str]) -> None:
    client = Browser(app)
    login(client, accounts["admin"])
    for query in (
        "page=-3",
        "page=abc",
        "page=99999",
        "q=%00%27;--",
        "status=nonsense",
        "q=" + "x" * 500,
        "status=%00",
        "tier=%00x",
        "municipality=cr%00",
        "category=%00",
        "alert=%00",
    ):
        assert client.get(f"/admin/cases/?{query}").status_code == 200, query


# --- times in the case's country ---------------------------------------------------------------


def test_a_honduras_case_shows_honduras_time(app: Flask, accounts: dict[str, str]) -> None:
    reference = open_forwarded_case("hn-san-pedro-sula", "+50488240001")[1]
    created = datetime(2026, 11, 30, 18, 30, tzinfo=UTC)
    with db.transaction() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        assert case is not None
        case.created_at = created
        session.execute(
            update(CaseEvent).where(CaseEvent.case_id == case.id).values(created_at=created)
        )
    client = Browser(app)
    login(client, accounts["admin"])  # an admin in Costa Rica's default zone: the case decides
    html = client.get(f"/admin/cases/{reference}").get_data(as_text=True)
    cell = re.search(r'<td id="case-created">(.*?)</td>', html, re.S)
    assert cell is not None
    assert '<time datetime="2026-11-30T18:30:00+00:00" title="2026-11-30 18:30 UTC">' in cell.group(
        1
    )
    assert "12:30" in cell.group(1) and "18:30 UTC" not in re.sub(r"<[^>]+>", "", cell.group(1))
    timeline = re.search(r'<ol id="timeline">(.*?)</ol>', html, re.S)
    assert timeline is not None and "12:30" in timeline.group(1)
    inbox = client.get("/admin/cases/", query_string={"q": reference}).get_data(as_text=True)
    assert "12:30" in inbox


# --- alerts, timeline ----------------------------------------------------------------------------


def test_alert_states_and_the_timeline_are_in_words(app: Flask, accounts: dict[str, str]) -> None:
    reference = open_forwarded_case("cr-upala", "+50688250001")[1]
    with db.transaction() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        assert case is not None
        session.execute(
            update(Message)
            .where(Message.id.in_(select(Referral.message_id).where(Referral.case_id == case.id)))
            .values(status="failed", error_code="30003", attempts=5)
        )
    client = Browser(app)
    login(client, accounts["admin"])
    page = f"/admin/cases/{reference}"
    post(client, f"{page}/accept", page)
    html = client.get(page).get_data(as_text=True)
    alerts = re.search(r'<table id="referrals">(.*?)</table>', html, re.S)
    assert alerts is not None
    assert "Failed" in alerts.group(1) and "provider error 30003" in alerts.group(1)
    timeline = re.search(r'<ol id="timeline">(.*?)</ol>', html, re.S)
    assert timeline is not None
    words = re.sub(r"<[^>]+>", "", timeline.group(1))
    upala = "Punto focal Upala"
    assert f"Sent to the focal point of Upala ({upala}" in words
    assert "Accepted on the web by admin@ruta.test." in words
    assert "Request received by SMS, urgency" in words
    for code in ("focal_points=", "coordinator=", "position=", "forwarded", "twilio", "standard"):
        assert code not in words, code

    app.config["RUTA_ADMIN_LANGUAGE"] = "es"
    try:
        html = client.get(page).get_data(as_text=True)
    finally:
        app.config["RUTA_ADMIN_LANGUAGE"] = "en"
    timeline = re.search(r'<ol id="timeline">(.*?)</ol>', html, re.S)
    assert timeline is not None
    words = re.sub(r"<[^>]+>", "", timeline.group(1))
    assert f"Enviada al punto focal de Upala ({upala}" in words
    assert "Aceptada en la web por admin@ruta.test." in words
    assert "Falló" in html and 'id="case-status" data-status="accepted">Aceptada<' in html


# --- reassign ------------------------------------------------------------------------------------


def test_reassign_offers_the_cases_chain_only_and_preselects_nobody(
    app: Flask, accounts: dict[str, str]
) -> None:
    reference = open_forwarded_case("cr-upala", "+50688260001")[1]
    page = f"/admin/cases/{reference}"
    client = Browser(app)
    login(client, accounts["coordinator"])
    html = client.get(page).get_data(as_text=True)
    select_ = re.search(
        r'<select name="focal_point_id" id="reassign-to" required>(.*?)</select>', html, re.S
    )
    assert select_ is not None
    options = re.findall(r'<option value="(\d*)"( selected)?>([^<]+)</option>', select_.group(1))
    assert options[0][0] == "" and options[0][1] == " selected"  # "Choose a focal point"
    assert not any(selected for value, selected, _ in options[1:])
    offered = {int(value) for value, _, _ in options[1:]}
    chiles = focal_point_id("Punto focal Los Chiles")
    assert focal_point_id("Respaldo Upala") in offered
    assert chiles not in offered  # another municipality's focal point
    assert focal_point_id("Punto focal San Pedro Sula") not in offered
    # The server refuses it as well, whatever the form says.
    post(client, f"{page}/reassign", page, focal_point_id=str(chiles))
    assert case_by_reference(reference).assigned_focal_point_id != chiles
    assert "the case&#39;s chain" in client.get(page).get_data(as_text=True)
    # Nothing chosen: refused with a message, nothing changes.
    before = case_by_reference(reference).assigned_focal_point_id
    response = post(client, f"{page}/reassign", page, focal_point_id="")
    assert response.status_code == 302
    assert case_by_reference(reference).assigned_focal_point_id == before


# --- notes ---------------------------------------------------------------------------------------


def test_internal_notes_are_encrypted_audited_and_never_sent(
    app: Flask, accounts: dict[str, str], fake_provider: Any
) -> None:
    reference = open_forwarded_case("cr-upala", "+50688270001")[1]
    page = f"/admin/cases/{reference}"
    client = Browser(app)
    login(client, accounts["coordinator"])
    note = "Llamó la hermana: prefiere visita el martes <b>tarde</b>"
    response = post(client, f"{page}/notes", page, body=note)
    assert response.status_code == 302
    html = client.get(page).get_data(as_text=True)
    assert "Llamó la hermana: prefiere visita el martes &lt;b&gt;tarde&lt;/b&gt;" in html
    assert "coordinator@ruta.test" in html
    with db.transaction() as session:
        (stored,) = session.scalars(select(CaseNote))
        assert stored.body == note and stored.author == "coordinator@ruta.test"
        raw = session.execute(text("SELECT body FROM case_notes")).scalar_one()
        assert "hermana" not in raw  # encrypted at rest
        bodies = [m.body or "" for m in session.scalars(select(Message))]
    assert not any("hermana" in b for b in bodies)
    assert not any("hermana" in m["body"] for m in fake_provider.messages())
    (added,) = audited("case.note", reference)
    assert "hermana" not in str(added.detail)
    views = audited("case.view", reference)
    assert views[-1].detail.get("notes") == 1  # the view that showed the note says so

    # An empty or overlong note is refused with a 4xx, and the text typed is kept.
    assert post(client, f"{page}/notes", page, body="   ").status_code == 422
    long = "x" * 2001
    refused = post(client, f"{page}/notes", page, body=long)
    assert refused.status_code == 422 and long in refused.get_data(as_text=True)
    # A focal point of another municipality cannot add to or read it.
    outsider = Browser(app)
    login(outsider, accounts["viewer"])
    assert outsider.get(page).status_code == 403
    assert outsider.post(f"{page}/notes", data={"body": "x"}).status_code in (400, 403)


def test_notes_go_with_the_persons_data_when_the_case_is_anonymised(
    app: Flask, accounts: dict[str, str]
) -> None:
    from ruta import clock, erasure

    reference = open_forwarded_case("cr-upala", "+50688280001")[1]
    page = f"/admin/cases/{reference}"
    client = Browser(app)
    login(client, accounts["admin"])
    post(client, f"{page}/notes", page, body="vive con su tía en el barrio norte")
    with db.transaction() as session:
        case = session.scalars(select(Case).where(Case.reference == reference)).one()
        assert len(session.scalars(select(CaseNote)).all()) == 1
        erasure.anonymise_case(session, case, clock.now(), actor="person", reason="erase request")
    with db.transaction() as session:
        assert session.scalars(select(CaseNote)).all() == []
    assert "tía" not in client.get(page).get_data(as_text=True)
