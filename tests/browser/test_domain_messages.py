"""In a real browser, in Spanish and in English: the flow editor's live validation (rebuilt by
flows.js from the validate JSON) and the import's dry run give the domain's messages in the
page's language."""

from __future__ import annotations

from typing import Any

from ruta import directory_io
from tests.browser.conftest import assert_accessible, log_in, shot
from tests.test_directory_io import directory_restored

SAID = {
    "es": {
        "target": "el destino 'nowhere' no existe",
        "duplicate": "la misma organización y servicio que fila 2",
        "phone": "teléfono 'llame al centro': use solo dígitos",
        "row": "fila 3",
    },
    "en": {
        "target": "target 'nowhere' does not exist",
        "duplicate": "same organisation and service as row 2",
        "phone": "phone 'llame al centro': use digits, spaces and + - ( ) . / only",
        "row": "row 3",
    },
}
CSV = (
    ",".join(directory_io.CSV_COLUMNS)
    + "\n"
    + (
        "Org Idioma Web,Servicio uno,health,cr-upala,active,+506 0000 9601,1-5 08:00-16:00,,es,\n"
        "Org Idioma Web,Servicio uno,health,cr-upala,active,+506 0000 9602,1-5 08:00-16:00,,es,\n"
        "Org Idioma Web,Servicio dos,health,cr-upala,active,llame al centro,1-5 08:00-16:00,,es,\n"
    )
)


def test_the_editors_live_validation_speaks_the_page_language(
    page: Any, accounts: dict[str, str], language: str
) -> None:
    said = SAID[language]
    log_in(page, accounts["flow_editor"])
    page.wait_for_url("**/admin/")
    page.goto("/admin/flows/main/edit")
    source = page.input_value("#flow-source")
    assert "goto: find\n" in source
    page.fill("#flow-source", source.replace("goto: find\n", "goto: nowhere\n", 1))
    page.wait_for_selector("#validation li.error")
    page.wait_for_function(
        f"document.querySelector('#validation').textContent.includes({said['target']!r})"
    )
    other = SAID["en" if language == "es" else "es"]["target"]
    assert other not in page.inner_text("#validation")
    shot(page, f"flow-validation-error-{language}")
    assert_accessible(page)


def test_the_dry_run_gives_its_reasons_in_the_page_language(
    page: Any, accounts: dict[str, str], language: str
) -> None:
    said = SAID[language]
    with directory_restored():
        log_in(page, accounts["directory_editor"])
        page.wait_for_url("**/admin/")
        page.goto("/admin/directory/import")
        page.set_input_files(
            "#import-file",
            {"name": "d.csv", "mimeType": "text/csv", "buffer": CSV.encode()},
        )
        page.select_option("#import-format", "csv")
        page.click("#dry-run")
        page.wait_for_selector("#dry-run-result")
        refused = page.locator("#dry-run-result tr.refused")
        assert refused.count() == 2
        first, second = refused.nth(0).inner_text(), refused.nth(1).inner_text()
        assert said["row"] in first and said["duplicate"] in first
        assert said["phone"] in second
        shot(page, f"directory-dry-run-reasons-{language}")
        assert_accessible(page)
