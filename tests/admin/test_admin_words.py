"""The routing pages and the audit log in words and local time (issue 14): kinds of help,
countries and audit actions named in the user's language, days and times in their form; error
pages in the user's language too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, update

from ruta import clock, focal_points
from ruta.db import db
from ruta.models import AuditEntry, DataSharingAgreement, User
from tests.admin.conftest import Browser, login


@pytest.fixture()
def spanish(app: Flask) -> Iterator[None]:
    app.config["RUTA_ADMIN_LANGUAGE"] = "es"
    try:
        yield
    finally:
        app.config["RUTA_ADMIN_LANGUAGE"] = "en"


def section(html: str, element_id: str, end: str) -> str:
    return between(html, f'id="{element_id}"', end)


def between(html: str, start_text: str, end: str) -> str:
    start = html.index(start_text)
    return html[start : html.index(end, start)]


def test_the_routing_page_names_kinds_countries_and_days_in_spanish(
    app: Flask, accounts: dict[str, str], spanish: None
) -> None:
    today = clock.now().date()
    with db.transaction() as session:
        soon = focal_points.add_agreement(
            session, "Red Comunitaria Ejemplo", "ACUERDO-DIEZ", today + timedelta(days=10)
        )
        soon_id = soon.id
    try:
        client = Browser(app)
        login(client, accounts["admin"])
        html = client.get("/admin/routing/").get_data(as_text=True)
        chains = section(html, "chains", "</table>")
        assert "Salud" in chains and ">health<" not in chains
        assert "Upala (Costa Rica)" in chains and "(CR)" not in chains
        expiring = section(html, "expiring-agreements", "</ul>")
        in_ten_days = today + timedelta(days=10)
        spanish_months = (
            "ene",
            "feb",
            "mar",
            "abr",
            "may",
            "jun",
            "jul",
            "ago",
            "sept",
            "oct",
            "nov",
            "dic",
        )
        assert f"vence el {in_ten_days.day} {spanish_months[in_ten_days.month - 1]}" in expiring
        assert "(en 10 días)" in expiring and str(in_ten_days) not in expiring
        focal = section(html, "focal-points", "</table>")
        assert '<th scope="col">Tipos de ayuda</th>' in focal and "todos" in focal
    finally:
        with db.transaction() as session:
            session.execute(delete(DataSharingAgreement).where(DataSharingAgreement.id == soon_id))


def test_the_audit_log_shows_actions_in_words_and_times_in_the_users_zone(
    app: Flask, accounts: dict[str, str], spanish: None
) -> None:
    with db.transaction() as session:
        session.execute(
            update(User)
            .where(User.email == accounts["admin"])
            .values(time_zone="America/Tegucigalpa")
        )
        at = datetime(2026, 3, 10, 18, 5, tzinfo=UTC)
        session.add_all(
            [
                AuditEntry(actor="tests", action="case.view", object_type="case", at=at),
                AuditEntry(actor="tests", action="test.unknown", object_type="x", at=at),
            ]
        )
    client = Browser(app)
    login(client, accounts["admin"])
    html = client.get("/admin/audit/").get_data(as_text=True)
    row = between(html, 'data-action="case.view"', "</tr>")
    assert "<td>Caso consultado</td>" in row and "<td>caso</td>" in row
    # Honduras is UTC-6 all year: 18:05 UTC is 12:05 there; UTC on hover.
    assert re.search(
        r'<time datetime="2026-03-10T18:05:00\+00:00" title="2026-03-10 18:05 UTC">'
        r"10 mar 2026, 12:05 [^<]+</time>",
        row,
    ), row
    unknown = between(html, 'data-action="test.unknown"', "</tr>")
    assert '<code translate="no">test.unknown</code>' in unknown  # no word for it: the code
    filters = section(html, "audit-filters", "</form>")
    assert re.search(r'<option value="case"\s*>Todas las acciones sobre: caso</option>', filters)
    assert re.search(r'<option value="case.view"\s*>Caso consultado</option>', filters)
    narrowed = client.get("/admin/audit/?action=case").get_data(as_text=True)
    assert 'data-action="case.view"' in narrowed and 'data-action="test.unknown"' not in narrowed


def test_admin_errors_are_pages_in_the_users_language(
    app: Flask, client: Any, accounts: dict[str, str], spanish: None
) -> None:
    browser = Browser(app)
    login(browser, accounts["coordinator"])
    refused = browser.get("/admin/audit/")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 403 and refused.mimetype == "text/html"
    assert '<html lang="es">' in page and "Su rol no da acceso a esta página." in page
    missing = browser.get("/admin/routing/focal-points/999999")
    assert missing.status_code == 404 and "Esta página no existe" in missing.get_data(as_text=True)
    # Outside the admin (webhooks, scripts) an error stays a line of plain text.
    outside = client.get("/no-such-page")
    assert outside.status_code == 404 and outside.mimetype == "text/plain"


@pytest.mark.parametrize(
    ("language", "seconds", "said"),
    [
        ("es", 20, "ahora mismo"),
        ("es", 5 * 60, "hace 5 min"),
        ("es", 3 * 3600, "hace 3 h"),
        ("es", 3 * 86400, "hace 3 días"),
        ("en", 20, "just now"),
        ("en", 5 * 60, "5 min ago"),
        ("en", 86400 * 2, "2 days ago"),
    ],
)
def test_a_cases_age_reads_as_a_phrase(app: Flask, language: str, seconds: int, said: str) -> None:
    """ "hace 0 min" said nothing: under a minute is "just now"; the rest a whole phrase, so
    that Spanish can put "hace" first."""
    from admin.cases import ago

    app.config["RUTA_ADMIN_LANGUAGE"] = language
    try:
        with app.test_request_context("/admin/cases/"):
            assert ago(timedelta(seconds=seconds)) == said
    finally:
        app.config["RUTA_ADMIN_LANGUAGE"] = "en"
