"""The admin speaks the user's language: the catalogue is compiled from its source, the page's
``lang`` follows the user, and a user's choice on "My account" sticks."""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from tests.admin.conftest import Browser, csrf_token, login

TRANSLATIONS = Path(__file__).parents[2] / "admin" / "translations"


def test_every_compiled_catalogue_matches_its_source() -> None:
    sources = sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"))
    assert sources, "no catalogue under admin/translations"
    for source in sources:
        with source.open("rb") as handle:
            catalogue = read_po(handle)
        untranslated = [m.id for m in catalogue if m.id and not m.string]
        assert not untranslated, f"{source}: untranslated {untranslated[:5]}"
        # `pybabel update` guesses from a similar message and marks it fuzzy; a fuzzy entry is
        # left out of the compiled catalogue (the page shows English) and is often wrong.
        fuzzy = [m.id for m in catalogue if m.id and m.fuzzy]
        assert not fuzzy, f"{source}: fuzzy (check, then drop the flag) {fuzzy[:5]}"
        compiled = io.BytesIO()
        write_mo(compiled, catalogue)
        assert source.with_suffix(".mo").read_bytes() == compiled.getvalue(), (
            f"{source.with_suffix('.mo')} is stale: run pybabel compile -d admin/translations"
        )


def test_the_login_page_follows_the_default_language_and_the_visitors_pick(app) -> None:
    app.config["RUTA_ADMIN_LANGUAGE"] = "es"
    client = Browser(app)
    page = client.get("/admin/login").get_data(as_text=True)
    assert '<html lang="es">' in page and "Iniciar sesión" in page and "Log in" not in page
    page = client.get("/admin/login?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in page and "Log in" in page and "Iniciar sesión" not in page
    app.config["RUTA_ADMIN_LANGUAGE"] = "en"


def test_a_user_picks_english_and_the_next_pages_are_english(app, accounts) -> None:
    app.config["RUTA_ADMIN_LANGUAGE"] = "es"
    client = Browser(app)
    try:
        login(client, accounts["admin"])
        assert "Cerrar sesión" in client.get("/admin/").get_data(as_text=True)
        token = csrf_token(client.get("/admin/account").get_data(as_text=True))
        answer = client.post(
            "/admin/account",
            data={
                "language": "en",
                "time_zone": "America/Tegucigalpa",
                "phone": "",
                "csrf_token": token,
            },
            follow_redirects=True,
        )
        page = answer.get_data(as_text=True)
        assert '<html lang="en">' in page and "Your settings are saved." in page
        assert "Log out" in client.get("/admin/").get_data(as_text=True)
        refused = client.post(
            "/admin/account",
            data={
                "language": "es",
                "time_zone": "Mars/Olympus",
                "phone": "12",
                "csrf_token": token,
            },
            follow_redirects=True,
        ).get_data(as_text=True)
        assert "Mars/Olympus is not a time zone." in refused
        assert "international form" in refused
    finally:
        app.config["RUTA_ADMIN_LANGUAGE"] = "en"
