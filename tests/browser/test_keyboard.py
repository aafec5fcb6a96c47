"""Keyboard only (issue 14): logging in and changing one's language on "My account" without a
mouse, Tab, Enter, arrows and typing, in Spanish and in English. Each step's focus is visible
and each page passes axe-core, error and saved states included."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask

from tests.browser.conftest import PASSWORD, assert_accessible, shot

WORDS = {
    "es": {"wrong": "Correo o contraseña incorrectos", "saved": "Su configuración se guardó."},
    "en": {"wrong": "Wrong email or password", "saved": "Your settings are saved."},
}


def focused(page: Any) -> dict[str, Any]:
    """What has the focus, and whether it is drawn (an outline, as :focus-visible gives)."""
    return page.evaluate(
        """() => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            return {
                tag: el.tagName.toLowerCase(), id: el.id, name: el.getAttribute('name'),
                href: el.getAttribute('href'), type: el.getAttribute('type'),
                text: (el.innerText || '').trim(),
                outlined: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0,
                box: el.getBoundingClientRect().toJSON(),
            };
        }"""
    )


def tab_to(page: Any, wanted: Any, limit: int = 40) -> dict[str, Any]:
    """Press Tab until ``wanted(focused)``; the element reached must show its focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = focused(page)
        if wanted(now):
            assert now["outlined"], f"focus not visible on {now}"
            return now
    raise AssertionError(f"Tab never reached the element ({limit} presses)")


def type_into(page: Any, text: str) -> None:
    page.keyboard.press("Control+A")
    page.keyboard.type(text)


@pytest.mark.parametrize("language", ["es", "en"])
def test_log_in_and_change_language_with_the_keyboard_only(
    app: Flask, page: Any, accounts: dict[str, str], language: str
) -> None:
    other = "en" if language == "es" else "es"
    app.config["RUTA_ADMIN_LANGUAGE"] = language
    try:
        page.goto("/admin/login")
        assert page.get_attribute("html", "lang") == language
        # The first Tab reaches the skip link, shown on focus; Enter takes the focus to the page.
        skip = tab_to(page, lambda f: f["href"] == "#content", limit=1)
        assert skip["box"]["x"] >= 0 and skip["box"]["width"] > 0
        page.keyboard.press("Enter")
        tab_to(page, lambda f: f["name"] == "email", limit=3)
        type_into(page, accounts["admin"])
        tab_to(page, lambda f: f["name"] == "password", limit=1)
        type_into(page, "not the password")
        page.keyboard.press("Enter")
        page.wait_for_selector("[role=alert]")
        assert page.inner_text("[role=alert]").startswith(WORDS[language]["wrong"])
        shot(page, f"keyboard-login-refused-{language}")
        assert_accessible(page)

        tab_to(page, lambda f: f["name"] == "email")
        type_into(page, accounts["admin"])
        tab_to(page, lambda f: f["name"] == "password", limit=1)
        type_into(page, PASSWORD)
        tab_to(page, lambda f: f["tag"] == "button" and f["type"] == "submit", limit=1)
        page.keyboard.press("Enter")
        # The skip link's #content stays on the URL through the login's redirect.
        page.wait_for_url(re.compile(r"/admin/(#content)?$"))
        shot(page, f"keyboard-dashboard-{language}")

        # My account: the email in the header links to it.
        tab_to(page, lambda f: (f["href"] or "").endswith("/admin/account"))
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/admin/account(#content)?$"))
        assert_accessible(page)
        tab_to(page, lambda f: f["id"] == "language")
        page.keyboard.press("ArrowDown" if language == "es" else "ArrowUp")
        assert page.eval_on_selector("#language", "el => el.value") == other
        tab_to(page, lambda f: f["tag"] == "button" and f["text"] in ("Guardar", "Save"))
        shot(page, f"keyboard-account-{language}")
        page.keyboard.press("Enter")
        page.wait_for_selector("[role=status]")
        assert page.get_attribute("html", "lang") == other
        assert WORDS[other]["saved"] in page.inner_text("[role=status]")
        shot(page, f"keyboard-account-saved-{other}")
        assert_accessible(page)
    finally:
        app.config["RUTA_ADMIN_LANGUAGE"] = "en"
