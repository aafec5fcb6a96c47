"""The directory's hours editor and municipality picker in a real browser, in Spanish and in
English: a row per weekday with time fields, the server refusing a day that closes before it
opens, the picker's filter; then the saved hours as people read them by SMS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from ruta import directory
from ruta.db import db
from ruta.models import Service
from tests.browser.conftest import assert_accessible, log_in, shot
from tests.test_directory_io import directory_restored

WORDS = {
    "es": {"saturday": "Sábado", "wrong": "debe cerrar más tarde", "saved": "Guardado."},
    "en": {"saturday": "Saturday", "wrong": "it must close later", "saved": "Saved."},
}


@pytest.fixture(params=["es", "en"])
def language(request: Any, app: Flask) -> Iterator[str]:
    app.config["RUTA_ADMIN_LANGUAGE"] = request.param
    try:
        with directory_restored():
            yield request.param
    finally:
        app.config["RUTA_ADMIN_LANGUAGE"] = "en"


def service_id(name: str) -> int:
    with db.transaction() as session:
        found = session.scalar(select(Service.id).where(Service.name == name))
        assert found is not None
        return found


def test_the_hours_editor_and_the_municipality_picker(
    page: Any, accounts: dict[str, str], language: str
) -> None:
    words = WORDS[language]
    sid = service_id("Ebais Upala Centro")  # Monday to Friday, 7 to 16
    log_in(page, accounts["directory_editor"])
    page.wait_for_url("**/admin/")
    page.goto(f"/admin/directory/services/{sid}")
    assert page.locator("#hours-editor tbody tr").count() == 7
    assert page.locator("#day-6").inner_text() == words["saturday"]
    assert page.input_value("#hours-1-0-opens") == "07:00"
    assert_accessible(page)

    # Saturday: a closing time before the opening time is refused by the server, kept in the form.
    page.fill("#hours-6-0-opens", "12:00")
    page.fill("#hours-6-0-closes", "09:00")
    page.click("#save-service")
    page.wait_for_selector("#hours-6-error")
    assert words["wrong"] in page.locator("#hours-6-error").inner_text()
    assert page.input_value("#hours-6-0-opens") == "12:00"
    shot(page, f"directory-hours-refused-{language}")
    assert_accessible(page)

    # Then right, with the picker's filter adding Los Chiles by keyboard.
    page.fill("#hours-6-0-opens", "09:00")
    page.fill("#hours-6-0-closes", "12:00")
    page.fill("#municipality-filter", "chiles")
    visible = page.locator("#municipality-choices label:not(.hidden)")
    assert visible.count() >= 1
    assert all("Chiles" in text for text in visible.all_inner_texts())
    visible.first.locator("input").focus()
    page.keyboard.press("Space")
    assert "Los Chiles" in page.locator("#municipality-chosen").inner_text()
    shot(page, f"directory-hours-editor-{language}")
    page.click("#save-service")
    page.wait_for_selector(f"text={words['saved']}")
    with db.transaction() as session:
        found = session.get(Service, sid)
        assert found is not None
        assert directory.format_hours(found, "es") == "Lun-Vie 7-16. Sab 9-12"
        assert {link.location.municipality.code for link in found.locations} >= {
            "cr-upala",
            "cr-los-chiles",
        }
    assert_accessible(page)
