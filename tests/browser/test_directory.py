"""A directory editor imports a CSV with one bad row: the dry run refuses it with its reason,
and applying writes only the good row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ruta.db import db
from ruta.models import Service
from tests.browser.conftest import log_in, shot
from tests.test_directory_io import directory_restored

CSV = (
    "organization,service,category,municipality,status,phone,hours,alert_text,languages,"
    "description\n"
    "Red Comunitaria Ejemplo,Ropero comunitario Upala,food,cr-upala,active,+506 0000 0199,"
    "1-5 09:00-12:00,,es,Ropa y enseres\n"
    "Red Comunitaria Ejemplo,Servicio en ninguna parte,food,xx-nowhere,active,+506 0000 0198,"
    "1-5 09:00-12:00,,es,\n"
)


def test_import_a_csv_with_a_bad_row(page: Any, accounts: dict[str, str], tmp_path: Any) -> None:
    upload = tmp_path / "servicios.csv"
    upload.write_text(CSV, encoding="utf-8")
    with directory_restored():
        log_in(page, accounts["directory_editor"])
        page.wait_for_url("**/admin/")
        page.goto("/admin/directory/import")
        shot(page, "directory-import")
        page.set_input_files("#import-file", str(upload))
        page.select_option("#import-format", "csv")
        page.click("#dry-run")
        page.wait_for_selector("#dry-run-result")
        refused = page.locator("#dry-run-result tr.refused")
        assert refused.count() == 1
        assert "xx-nowhere" in refused.inner_text()
        assert page.locator("#dry-run-result tr.added").count() == 1
        shot(page, "directory-dry-run")
        with db.transaction() as session:  # a dry run writes nothing
            assert session.scalar(select(Service).where(Service.name.like("Ropero%"))) is None
        page.click("#apply-import")
        page.wait_for_load_state()
        shot(page, "directory-imported")
        with db.transaction() as session:
            assert session.scalar(select(Service).where(Service.name.like("Ropero%"))) is not None
            assert session.scalar(select(Service).where(Service.name.like("Servicio en%"))) is None
        page.goto("/admin/directory/?q=Ropero")
        assert "Ropero comunitario Upala" in page.inner_text("#directory-results")
        shot(page, "directory-search")
