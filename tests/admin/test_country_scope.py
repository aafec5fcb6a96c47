"""Coordinators act on their own country only: its data-sharing agreements and its broadcasts.

An agreement belongs to an organisation, whose countries are those of its focal points: a
coordinator changes the agreements of organisations wholly in their country, sees (and may not
change, 403) those shared with other countries, and does not see the others (404, as for focal
points and cases out of scope). A broadcast belongs to its municipality's country; one to every
country (no municipality) is the admins' alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from flask import Flask
from sqlalchemy import delete, select

from ruta import focal_points
from ruta.db import db
from ruta.models import Broadcast, DataSharingAgreement, FocalPoint, Municipality, Organization
from tests.admin.conftest import Browser, csrf_token, login

EXPIRES = date(2030, 6, 30)


@pytest.fixture()
def agreements(app: Flask) -> Iterator[dict[str, int]]:
    """An agreement of an organisation in Honduras only, and one in Costa Rica only; the demo's
    municipal network (focal points in CR, HN and PA) shares DEMO-ACUERDO-1."""
    ids = {}
    with db.transaction() as session:
        for key, country, place, phone in (
            ("hn", "HN", "hn-san-pedro-sula", "+50400007001"),
            ("cr", "CR", "cr-upala", "+50600007001"),
        ):
            org = f"Red de prueba {country}"
            focal_points.add_focal_point(
                session, name=f"Enlace {country}", phone=phone, organization=org,
                country=country, municipality=place,
            )  # fmt: skip
            ids[key] = focal_points.add_agreement(session, org, f"ACUERDO-{key}", EXPIRES).id
        ids["shared"] = session.scalar(
            select(DataSharingAgreement.id).where(
                DataSharingAgreement.reference == "DEMO-ACUERDO-1"
            )
        )
    yield ids
    with db.transaction() as session:
        orgs = select(Organization.id).where(Organization.name.like("Red de prueba%"))
        session.execute(
            delete(DataSharingAgreement).where(DataSharingAgreement.organization_id.in_(orgs))
        )
        session.execute(delete(FocalPoint).where(FocalPoint.organization_id.in_(orgs)))
        session.execute(delete(Organization).where(Organization.id.in_(orgs)))


def agreement(agreement_id: int) -> tuple[str, date]:
    with db.transaction() as session:
        found = session.get(DataSharingAgreement, agreement_id)
        assert found is not None
        return found.reference, found.expires_on


def signed_in(app: Flask, email: str) -> Browser:
    browser = Browser(app)
    assert login(browser, email).status_code == 302
    return browser


def token(browser: Browser) -> str:
    return csrf_token(browser.get("/admin/").get_data(as_text=True))


def test_a_coordinator_changes_only_their_own_countrys_agreements(
    app: Flask, accounts: dict[str, str], agreements: dict[str, int]
) -> None:
    cr = signed_in(app, accounts["coordinator"])
    expire = {"reference": "X", "expires_on": "2020-01-01", "action": "edit"}
    for key, status in (("hn", 404), ("shared", 403)):
        url = f"/admin/routing/agreements/{agreements[key]}"
        before = agreement(agreements[key])
        assert cr.get(url).status_code == status, key
        for action in ("edit", "renew"):
            changed = cr.post(url, data=expire | {"action": action, "csrf_token": token(cr)})
            assert changed.status_code == status, (key, action)
        assert agreement(agreements[key]) == before
    added = {"reference": "NUEVO", "expires_on": "2031-01-01", "csrf_token": token(cr)}
    for org in ("Red de prueba HN", "Municipalidad (demo)", "Organizacion nueva"):
        assert (
            cr.post("/admin/routing/agreements", data=added | {"organization": org}).status_code
            == 403
        )
    with db.transaction() as session:
        assert not session.scalar(
            select(DataSharingAgreement.id).where(DataSharingAgreement.reference == "NUEVO")
        )

    page = cr.get("/admin/routing/").get_data(as_text=True)
    assert "ACUERDO-hn" not in page and "ACUERDO-cr" in page and "DEMO-ACUERDO-1" in page
    own = f"/admin/routing/agreements/{agreements['cr']}"
    assert (
        f'href="{own}"' in page
        and f'href="/admin/routing/agreements/{agreements["shared"]}"' not in page
    )
    assert cr.get(own).status_code == 200
    saved = cr.post(own, data={"reference": "ACUERDO-cr", "expires_on": "2031-01-01",
                               "action": "edit", "csrf_token": token(cr)})  # fmt: skip
    assert saved.status_code == 302 and agreement(agreements["cr"])[1] == date(2031, 1, 1)

    admin = signed_in(app, accounts["admin"])
    for key in ("hn", "shared"):
        assert admin.get(f"/admin/routing/agreements/{agreements[key]}").status_code == 200


@pytest.fixture()
def broadcasts(app: Flask, accounts: dict[str, str]) -> dict[str, int]:
    """A draft to Honduras, one to every country and one to Costa Rica, all by the admin."""
    ids = {}
    with db.transaction() as session:
        for key, place in (("hn", "hn-san-pedro-sula"), ("all", None), ("cr", "cr-upala")):
            municipality = (
                session.scalar(select(Municipality.id).where(Municipality.code == place))
                if place
                else None
            )
            row = Broadcast(
                title=f"Aviso {key}", municipality_id=municipality, texts={"es": "Aviso"},
                created_by=accounts["admin"], status="awaiting_approval",
            )  # fmt: skip
            session.add(row)
            session.flush()
            ids[key] = row.id
    return ids


def status(broadcast_id: int) -> str:
    with db.transaction() as session:
        found = session.get(Broadcast, broadcast_id)
        assert found is not None
        return found.status


def test_a_coordinator_sees_and_acts_on_their_own_countrys_broadcasts_only(
    app: Flask, accounts: dict[str, str], broadcasts: dict[str, int]
) -> None:
    cr = signed_in(app, accounts["coordinator"])
    for key in ("hn", "all"):
        url = f"/admin/broadcasts/{broadcasts[key]}"
        assert cr.get(url).status_code == 404, key
        assert cr.get(f"{url}/progress").status_code == 404, key
        for action in ("send", "approve", "cancel"):
            assert cr.post(f"{url}/{action}", data={"csrf_token": token(cr)}).status_code == 404
        assert status(broadcasts[key]) == "awaiting_approval"
    listing = cr.get("/admin/broadcasts/").get_data(as_text=True)
    assert "Aviso cr" in listing and "Aviso hn" not in listing and "Aviso all" not in listing
    assert cr.get(f"/admin/broadcasts/{broadcasts['cr']}").status_code == 200

    form = cr.get("/admin/broadcasts/new").get_data(as_text=True)
    assert 'value="cr-upala"' in form and 'value="hn-san-pedro-sula"' not in form
    draft = {"title": "Visita", "topic": "general", "text_es": "Visita el jueves."}
    for place in ("hn-san-pedro-sula", ""):
        refused = cr.post("/admin/broadcasts/new", data=draft | {"municipality": place,
                          "csrf_token": token(cr)})  # fmt: skip
        assert refused.status_code == 403, place
    with db.transaction() as session:
        assert not session.scalar(select(Broadcast.id).where(Broadcast.title == "Visita"))
    made = cr.post("/admin/broadcasts/new", data=draft | {"municipality": "cr-upala",
                   "csrf_token": token(cr)})  # fmt: skip
    assert made.status_code == 302

    admin = signed_in(app, accounts["admin"])
    for key in ("hn", "all", "cr"):
        assert admin.get(f"/admin/broadcasts/{broadcasts[key]}").status_code == 200
    assert admin.post(f"/admin/broadcasts/{broadcasts['all']}/cancel",
                      data={"csrf_token": token(admin)}).status_code == 302  # fmt: skip
    assert status(broadcasts["all"]) == "cancelled"
