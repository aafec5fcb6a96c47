"""Focal points, routing chains and agreements in the admin. The database is shared by the whole
run: whatever a test adds or changes here is undone by the ``undo`` fixture."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from ruta import clock, focal_points
from ruta.db import db
from ruta.models import (
    AuditEntry,
    DataSharingAgreement,
    FocalPoint,
    Municipality,
    Organization,
    RoutingChain,
)
from tests.admin.conftest import csrf_token, login

NEW_NUMBER = "+50688123456"


@pytest.fixture()
def undo(app: Any) -> Iterator[Callable[[type, int], None]]:
    """``undo(Model, id)`` deletes that row after the test (focal points, chains, agreements,
    organisations); the ``app`` fixture then removes the orphaned contacts."""
    created: list[tuple[type, int]] = []
    yield lambda model, row_id: created.append((model, row_id))
    with db.transaction() as session:
        for model in (RoutingChain, DataSharingAgreement, FocalPoint, Organization):
            ids = [row_id for m, row_id in created if m is model]
            if ids:
                session.execute(delete(model).where(model.id.in_(ids)))  # type: ignore[attr-defined]


def post(client: Any, url: str, page_url: str, data: dict[str, Any]) -> Any:
    token = csrf_token(client.get(page_url).get_data(as_text=True))
    return client.post(url, data={"csrf_token": token, **data})


def fp_id(name_prefix: str) -> int:
    with db.transaction() as session:
        found = session.scalar(select(FocalPoint.id).where(FocalPoint.name.like(f"{name_prefix}%")))
        assert found is not None
        return found


def audited(action: str) -> list[AuditEntry]:
    with db.transaction() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_the_page_lists_masked_numbers_and_warns(
    client: Any, accounts: dict[str, str], undo: Callable[[type, int], None]
) -> None:
    today = clock.now().date()
    with db.transaction() as session:
        soon = focal_points.add_agreement(
            session, "Red Comunitaria Ejemplo", "ACUERDO-POR-VENCER", today + timedelta(days=10)
        )
        far = focal_points.add_agreement(
            session, "Red Comunitaria Ejemplo", "ACUERDO-LEJANO", today + timedelta(days=400)
        )
        undo(DataSharingAgreement, soon.id)
        undo(DataSharingAgreement, far.id)
    login(client, accounts["viewer"])
    html = client.get("/admin/routing/").get_data(as_text=True)
    assert "+506*****001" in html and "+50600001001" not in html
    expiring = html[
        html.index('id="expiring-agreements"') : html.index(
            "</ul>", html.index('id="expiring-agreements"')
        )
    ]
    assert "ACUERDO-POR-VENCER" in expiring and "(in 10 days)" in expiring
    assert "ACUERDO-LEJANO" not in expiring
    assert 'data-missing="cr-escazu/health"' in html  # Escazú has no chains
    assert 'data-missing="cr-upala/health"' not in html  # Upala has all of them
    assert 'href="/admin/routing/chains/new' not in html  # a viewer reads only
    assert client.get("/admin/routing/focal-points/1").status_code == 403


def test_a_coordinator_manages_their_own_country_only(
    client: Any, accounts: dict[str, str]
) -> None:
    login(client, accounts["coordinator"])
    html = client.get("/admin/routing/").get_data(as_text=True)
    assert "Punto focal Upala" in html and "San Pedro Sula" not in html
    assert 'data-missing="hn-' not in html
    honduras = fp_id("Punto focal San Pedro Sula")
    assert client.get(f"/admin/routing/focal-points/{honduras}").status_code == 404
    assert (
        client.get(f"/admin/routing/focal-points/{fp_id('Punto focal Upala')}").status_code == 200
    )
    response = post(
        client,
        f"/admin/routing/focal-points/{honduras}/active",
        "/admin/routing/",
        {"active": "0"},
    )
    assert response.status_code == 404


def test_adding_a_focal_point_and_a_chain_from_the_web(
    client: Any, accounts: dict[str, str], undo: Callable[[type, int], None]
) -> None:
    login(client, accounts["admin"])
    form = {
        "name": "Oficina Escazu (test)",
        "phone": NEW_NUMBER,
        "organization": "Organizacion de prueba",
        "country": "cr",
        "municipality": "cr-escazu",
        "categories": ["health", "documents"],
        "languages": "es, en",
    }
    bad = post(
        client,
        "/admin/routing/focal-points/new",
        "/admin/routing/focal-points/new",
        {**form, "phone": "12"},
    )
    assert bad.status_code == 400 and "not a valid phone number" in bad.get_data(as_text=True)
    added = post(client, "/admin/routing/focal-points/new", "/admin/routing/focal-points/new", form)
    assert added.status_code == 302
    with db.transaction() as session:
        fp = session.scalar(select(FocalPoint).where(FocalPoint.name == "Oficina Escazu (test)"))
        assert fp is not None
        undo(FocalPoint, fp.id)
        undo(Organization, fp.organization_id)
        new_id = fp.id
        assert fp.country == "CR" and fp.categories == ["health", "documents"]
        assert fp.languages == ["es", "en"] and fp.contact.phone == NEW_NUMBER
    entry = audited("focal_point.add")[-1]
    assert entry.object_id == str(new_id) and NEW_NUMBER not in str(entry.detail)
    html = client.get("/admin/routing/").get_data(as_text=True)
    assert "+506*****456" in html and NEW_NUMBER not in html
    again = post(client, "/admin/routing/focal-points/new", "/admin/routing/focal-points/new", form)
    assert again.status_code == 400 and "already has this number" in again.get_data(as_text=True)

    page = "/admin/routing/chains/new?municipality=cr-escazu&category=documents"
    assert client.get(page).status_code == 200
    backup = fp_id("Respaldo Upala")
    chained = post(
        client,
        "/admin/routing/chains/new",
        page,
        {
            "municipality": "cr-escazu",
            "category": "documents",
            "position-0": [str(new_id)],
            "position-1": [str(backup)],
            "position-2": [],
        },
    )
    assert chained.status_code == 302
    with db.transaction() as session:
        chain = session.scalar(
            select(RoutingChain)
            .join(Municipality, Municipality.id == RoutingChain.municipality_id)
            .where(Municipality.code == "cr-escazu", RoutingChain.category_code == "documents")
        )
        assert chain is not None
        undo(RoutingChain, chain.id)
        assert [(s.position, s.focal_point_id) for s in chain.steps] == [(0, new_id), (1, backup)]
        chain_id = chain.id
    assert audited("chain.add")[-1].detail["positions"] == [[new_id], [backup]]
    html = client.get("/admin/routing/").get_data(as_text=True)
    assert 'data-missing="cr-escazu/documents"' not in html
    assert 'data-missing="cr-escazu/health"' in html

    # Edit: the backup becomes the primary; a focal point of another country is refused.
    edit = f"/admin/routing/chains/{chain_id}"
    honduras = fp_id("Punto focal San Pedro Sula")
    refused = post(client, edit, edit, {"position-0": [str(honduras)]})
    assert refused.status_code == 400
    assert post(client, edit, edit, {"position-0": [str(backup)]}).status_code == 302
    with db.transaction() as session:
        edited = session.get(RoutingChain, chain_id)
        assert edited is not None
        assert [(s.position, s.focal_point_id) for s in edited.steps] == [(0, backup)]
    assert audited("chain.edit")[-1].detail["before"] == [[new_id], [backup]]

    # Edit the focal point, then deactivate it.
    fp_page = f"/admin/routing/focal-points/{new_id}"
    saved = post(client, fp_page, fp_page, {**form, "phone": "", "name": "Oficina Escazu 2"})
    assert saved.status_code == 302
    deactivated = post(client, f"{fp_page}/active", "/admin/routing/", {"active": "0"})
    assert deactivated.status_code == 302
    with db.transaction() as session:
        fp = session.get(FocalPoint, new_id)
        assert fp is not None and fp.name == "Oficina Escazu 2" and not fp.active
        assert fp.contact.phone == NEW_NUMBER  # an empty number field keeps the number
    assert [e.object_id for e in audited("focal_point.deactivate")] == [str(new_id)]


def test_agreements_are_added_corrected_and_renewed(
    client: Any, accounts: dict[str, str], undo: Callable[[type, int], None]
) -> None:
    login(client, accounts["coordinator"])
    added = post(
        client,
        "/admin/routing/agreements",
        "/admin/routing/",
        {
            "organization": "Red Comunitaria Ejemplo",
            "reference": "ACUERDO-WEB",
            "expires_on": "2020-01-31",
        },
    )
    assert added.status_code == 302
    with db.transaction() as session:
        agreement = session.scalar(
            select(DataSharingAgreement).where(DataSharingAgreement.reference == "ACUERDO-WEB")
        )
        assert agreement is not None
        undo(DataSharingAgreement, agreement.id)
        agreement_id = agreement.id
    html = client.get("/admin/routing/").get_data(as_text=True)
    assert "expired on 31 Jan 2020" in html

    page = f"/admin/routing/agreements/{agreement_id}"
    post(client, page, page, {"reference": "ACUERDO-WEB", "expires_on": "2020-02-29"})
    renewed = post(
        client,
        page,
        page,
        {"reference": "ACUERDO-WEB-2", "expires_on": "2031-01-01", "action": "renew"},
    )
    assert renewed.status_code == 302
    with db.transaction() as session:
        rows = {
            a.reference: a
            for a in session.scalars(
                select(DataSharingAgreement).where(
                    DataSharingAgreement.reference.like("ACUERDO-WEB%")
                )
            )
        }
        for row in rows.values():
            undo(DataSharingAgreement, row.id)
        assert str(rows["ACUERDO-WEB"].expires_on) == "2020-02-29"
        assert str(rows["ACUERDO-WEB-2"].expires_on) == "2031-01-01"
    (entry,) = audited("agreement.renew")
    assert entry.detail["renews"] == agreement_id
    assert len(audited("agreement.edit")) == 1 and len(audited("agreement.add")) == 1


def test_the_page_lists_requests_that_would_reach_nobody(
    client: Any, accounts: dict[str, str]
) -> None:
    login(client, accounts["viewer"])
    html = client.get("/admin/routing/").get_data(as_text=True)
    assert 'id="routing-gaps"' not in html  # the demo data reaches someone everywhere
    with db.transaction() as session:
        session.execute(
            update(FocalPoint)
            .where(FocalPoint.name.like("Coordinacion nacional GT%"))
            .values(active=False)
        )  # the app fixture switches it on again
    html = client.get("/admin/routing/").get_data(as_text=True)
    gaps = html[
        html.index('id="routing-gaps"') : html.index("</ul>", html.index('id="routing-gaps"'))
    ]
    assert "Esquipulas (Guatemala): nobody receives requests for Health" in gaps
    assert "Guatemala: no active coordinator" in gaps and "Upala" not in gaps
