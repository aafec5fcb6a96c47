"""Issue 14's first journeys in a real browser, in Spanish and in English: log in, the dashboard's
work list, a case found by its reference and accepted, with the mouse and with the keyboard only.
axe-core checks every page visited; screenshots are kept as artefacts."""

from __future__ import annotations

from typing import Any

import pytest

from tests.admin.conftest import open_forwarded_case
from tests.browser.conftest import assert_accessible, log_in, shot

WORDS = {
    "es": {
        "waiting": "1 solicitud espera ser aceptada",
        "found": "1 caso con la referencia",
        "accepted": "Aceptada",
        "sentence": "Aceptada por Punto focal Upala",
    },
    "en": {
        "waiting": "1 request waits for acceptance",
        "found": "1 case with the reference",
        "accepted": "Accepted",
        "sentence": "Accepted by Punto focal Upala",
    },
}


def test_dashboard_search_and_accept(
    page: Any, accounts: dict[str, str], sample_case: dict[str, Any], language: str
) -> None:
    words = WORDS[language]
    reference = sample_case["reference"]
    log_in(page, accounts["focal_point"])
    page.wait_for_url("**/admin/")
    assert page.get_attribute("html", "lang") == language
    line = page.locator("#work [data-line='unaccepted'] a")
    assert line.inner_text() == words["waiting"]
    shot(page, f"dashboard-work-{language}")
    assert_accessible(page)

    line.click()  # the line is a link to the list it counts
    page.wait_for_url("**/admin/cases/?status=forwarded")
    assert page.locator("#cases tbody tr[data-reference]").count() == 1
    assert_accessible(page)

    # Found by its reference typed as people say it: lower case, with a space.
    page.fill("#case-reference", f"{reference[:2].lower()} {reference[2:].lower()}")
    page.click("#find-case button[type=submit]")
    page.wait_for_load_state()
    assert words["found"] in page.inner_text("#case-count")
    shot(page, f"case-found-{language}")
    assert_accessible(page)

    page.click(f"#cases a:text-is('{reference}')")
    page.wait_for_url(f"**/admin/cases/{reference}")
    assert_accessible(page)
    with page.expect_navigation():
        page.click("#accept")
    page.wait_for_selector("#case-status[data-status=accepted]")
    assert page.inner_text("#case-status") == words["accepted"]
    assert words["sentence"] in page.inner_text("#timeline")
    shot(page, f"case-accepted-{language}")
    assert_accessible(page)


def test_accept_with_the_keyboard_only(page: Any, accounts: dict[str, str], language: str) -> None:
    reference = open_forwarded_case("cr-upala", "+50688330001")[1]
    words = WORDS[language]
    page.goto("/admin/login")
    # Log in without the mouse: Tab to each field, type, Enter submits.
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.name") == "email":
            break
    page.keyboard.type(accounts["focal_point"])
    page.keyboard.press("Tab")
    page.keyboard.type("correct horse battery staple")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_url("**/admin/")
    page.goto(f"/admin/cases/{reference}")
    assert_accessible(page)
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "accept":
            break
    else:
        pytest.fail("the accept button cannot be reached with Tab")
    shot(page, f"case-accept-focused-{language}")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_selector("#case-status[data-status=accepted]")
    assert page.inner_text("#case-status") == words["accepted"]
    shot(page, f"case-accepted-keyboard-{language}")
    assert_accessible(page)
