"""Logging in and out in a real browser."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import assert_accessible, log_in, shot


def test_log_in_and_out(page: Any, accounts: dict[str, str]) -> None:
    page.goto("/admin/")
    assert "/admin/login" in page.url  # anonymous: sent to the login page
    shot(page, "login")
    assert_accessible(page)
    log_in(page, accounts["admin"], "not the password")
    assert page.locator("[role=alert]").inner_text().startswith("Wrong email or password")
    log_in(page, accounts["admin"])
    page.wait_for_url("**/admin/")
    assert "admin@ruta.test" in page.inner_text("header")
    shot(page, "dashboard")
    page.click("text=Log out")
    page.wait_for_url("**/admin/login")
