"""Messages written below the admin (the flow validator's issues, the directory import's
reasons, the directory's budget warnings) are shown in the user's language; the CLI and the
English pages keep the English text exactly."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from flask import Flask
from sqlalchemy import select

from flows.model import Issue
from flows.translatable import Text, reason_of, said
from ruta import directory_io
from ruta.db import db
from ruta.models import Municipality
from tests.admin.conftest import csrf_token, login
from tests.admin.test_directory_admin import token_of, upload
from tests.admin.test_flows_admin import main_with, post_json, token
from tests.test_directory_io import HEADER, directory_restored

ROOT = Path(__file__).parents[2]
CATALOGUE = ROOT / "admin" / "translations" / "es" / "LC_MESSAGES" / "messages.po"


@contextmanager
def speaking(app: Flask, language: str) -> Iterator[None]:
    app.config["RUTA_ADMIN_LANGUAGE"] = language
    try:
        yield
    finally:
        app.config["RUTA_ADMIN_LANGUAGE"] = "en"


def test_a_text_is_its_english_and_keeps_its_template_and_parameters() -> None:
    message = Text("target '%(target)s' does not exist", target="nowhere")
    assert message == "target 'nowhere' does not exist" and isinstance(message, str)
    assert message.template == "target '%(target)s' does not exist"
    assert message.params == {"target": "nowhere"}
    assert str(Issue("flow[main] node[menu]", message)) == (
        "error: flow[main] node[menu]: target 'nowhere' does not exist"
    )
    spanish = {"target '%(target)s' does not exist": "el destino '%(target)s' no existe"}
    assert said(message, lambda s: spanish.get(s, s)) == "el destino 'nowhere' no existe"
    # A parameter that is itself a Text is said in turn; plain strings stay as they are.
    nested = Text("%(where)s: bad", where=Text("row %(n)s", n=3))
    assert said(nested, {"row %(n)s": "fila %(n)s", "%(where)s: bad": "%(where)s: mal"}.get) == (
        "fila 3: mal"
    )
    assert said("an exception's own words", lambda s: "never") == "an exception's own words"
    # A catalogue entry that lost a placeholder shows the English rather than failing.
    assert said(message, lambda s: "el destino %(objetivo)s") == str(message)
    assert reason_of(ValueError(message)) is message
    assert reason_of(ValueError("plain")) == "plain"


def test_every_domain_message_has_a_spanish_translation() -> None:
    with CATALOGUE.open("rb") as handle:
        catalogue = read_po(handle)
    found = {
        message
        for folder in ("flows", "ruta")
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / folder, [("**.py", "python")], keywords={"Text": None}
        )
    }
    assert len(found) > 80  # the validator's, the loader's and the import's
    missing = [m for m in sorted(found) if not (catalogue.get(m) and catalogue.get(m).string)]
    assert not missing, f"run the commands of README 'Translating the admin': {missing[:5]}"


def test_the_flow_editor_shows_the_validators_issues_in_the_users_language(
    app: Flask, client: Any, accounts: dict[str, str], flows_restored: None
) -> None:
    assert login(client, accounts["flow_editor"]).status_code == 302
    broken = main_with("    goto: alerts\n", "    goto: nowhere\n")
    with speaking(app, "es"):
        live = post_json(client, "/admin/flows/main/validate", {"source": broken}).get_json()
        assert {"path": "flow[main] node[menu]", "message": "el destino 'nowhere' no existe",
                "error": True} in live  # fmt: skip
        assert {"path": "flow[main] node[alerts]", "error": True,
                "message": "no se puede llegar desde el nodo de inicio"} in live  # fmt: skip
        assert not any("does not exist" in i["message"] for i in live)
        unreadable = post_json(client, "/admin/flows/main/validate", {"source": "flow: [\n"})
        assert unreadable.status_code == 422
        assert unreadable.get_json()[0]["message"].startswith("YAML no válido: ")
        saved = client.post(
            "/admin/flows/main/draft", data={"source": broken, "csrf_token": token(client)}
        )
        assert saved.status_code == 302
        page = html.unescape(client.get("/admin/flows/main/edit").get_data(as_text=True))
        assert "flow[main] node[menu]</code>: el destino 'nowhere' no existe" in page
        assert "does not exist" not in page and "unreachable from" not in page
        refused = client.post(
            "/admin/flows/main/publish",
            data={"source": broken, "note": "", "csrf_token": token(client)},
        )
        assert refused.status_code == 422
        assert "el destino 'nowhere' no existe" in html.unescape(refused.get_data(as_text=True))
    live = post_json(client, "/admin/flows/main/validate", {"source": broken}).get_json()
    assert {"path": "flow[main] node[menu]", "message": "target 'nowhere' does not exist",
            "error": True} in live  # fmt: skip
    page = html.unescape(client.get("/admin/flows/main/edit").get_data(as_text=True))
    assert "flow[main] node[menu]</code>: target 'nowhere' does not exist" in page


DUPLICATE_AND_BAD_PHONE = HEADER + (
    "Org Idioma,Servicio uno,health,cr-upala,active,+506 0000 9701,1-5 08:00-16:00,,es,\n"
    "Org Idioma,Servicio uno,health,cr-upala,active,+506 0000 9702,1-5 08:00-16:00,,es,\n"
    "Org Idioma,Servicio dos,health,cr-upala,active,llame al centro,1-5 08:00-16:00,,es,\n"
    "Org Idioma,Servicio tres,health,cr-upala,active,+506 0000 9703,8 08:00-16:00,,es,\n"
)


def reasons(page: str) -> dict[str, str]:
    rows = re.findall(
        r'<tr class="refused" data-row="([^"]+)">\s*<td>([^<]*)</td>.*?class="reason">(.*?)</td>',
        page,
        re.S,
    )
    return {row: html.unescape(f"{shown} | {why}") for row, shown, why in rows}


def test_the_import_dry_run_gives_its_reasons_in_the_users_language(
    app: Flask, client: Any, accounts: dict[str, str]
) -> None:
    assert login(client, accounts["directory_editor"]).status_code == 302
    with directory_restored():
        with speaking(app, "es"):
            page = upload(client, DUPLICATE_AND_BAD_PHONE).get_data(as_text=True)
            bad_file = upload(client, "name,colour\nx,1\n").get_data(as_text=True)
        english = upload(client, DUPLICATE_AND_BAD_PHONE).get_data(as_text=True)
    assert reasons(page) == {
        "row 3": "fila 3 | la misma organización y servicio que fila 2",
        "row 4": "fila 4 | teléfono 'llame al centro': use solo dígitos, espacios y + - ( ) . /",
        "row 5": 'fila 5 | horario "8 08:00-16:00": los días van de 1 (lunes) a 7 (domingo)',
    }
    assert "columna(s) desconocida(s) name, colour; las columnas son" in html.unescape(bad_file)
    assert "Org Idioma (organización nueva)" in page and "new organisation" not in page
    assert "Org Idioma (new organisation)" in english
    assert reasons(english) == {
        "row 3": "row 3 | same organisation and service as row 2",
        "row 4": "row 4 | phone 'llame al centro': use digits, spaces and + - ( ) . / only",
        "row 5": 'row 5 | hours "8 08:00-16:00": days are 1 (Monday) to 7 (Sunday)',
    }


def test_the_directory_editors_budget_warning_is_flashed_in_the_users_language(
    app: Flask, client: Any, accounts: dict[str, str]
) -> None:
    assert login(client, accounts["directory_editor"]).status_code == 302
    with db.transaction() as session:
        escazu = session.scalar(select(Municipality).where(Municipality.code == "cr-escazu"))
        assert escazu is not None
        mid, name = escazu.id, escazu.name
    url = f"/admin/directory/municipalities/{mid}"
    long = (
        "San José de la Montaña de los Ángeles del Río Frío, Cañón Grande de la Frontera "
        "Norte y la Alajuelita Oriental de Escazú"
    )
    try:
        with speaking(app, "es"):
            warned = client.post(
                url, data={"csrf_token": token_of(client, url), "name": long}, follow_redirects=True
            ).get_data(as_text=True)
        text = html.unescape(warned)
        budget = r"(la pantalla de \w+ tiene \d+ caracteres|la respuesta ocupa \d+ segmentos SMS)"
        assert re.search(budget + r".*; el límite es \d+ \(línea más larga: '", text), text
        assert "characters; the limit" not in text and "SMS segments" not in text
        assert long in text  # the line that breaks the screen, as it is
    finally:
        with db.transaction() as session:
            back = session.get(Municipality, mid)
            assert back is not None
            back.name = name


def test_the_editors_field_reasons_from_the_import_checks_are_in_the_users_language(
    app: Flask, client: Any, accounts: dict[str, str]
) -> None:
    assert login(client, accounts["directory_editor"]).status_code == 302
    _values, errors = directory_io.check_organization({"name": "x", "email": "no-address"})
    assert errors == {"email": "email 'no-address' is not an address"}  # the CLI's English
    url = "/admin/directory/organizations"
    with directory_restored(), speaking(app, "es"):
        page = client.post(
            url,
            data={
                "csrf_token": csrf_token(client.get(url).get_data(as_text=True)),
                "name": "Org Correo Malo",
                "email": "no-address",
            },
        ).get_data(as_text=True)
    assert "el correo &#39;no-address&#39; no es una dirección válida" in page
