"""Import files the database would refuse are refused by the dry run, with the reason: NUL
characters (PostgreSQL stores none) and JSON nested deeper than the parser goes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ruta import directory_io
from ruta.models import Service
from tests.admin.test_directory_admin import editor, upload  # noqa: F401  (the fixture)
from tests.conftest import count
from tests.test_directory_io import GOOD_ROW, HEADER, dry_run, hsds_sample

NUL_CSV = HEADER + GOOD_ROW.replace("Servicio nuevo", "Servicio\x00nuevo")


def nul_hsds(escaped: bool) -> str:
    doc = hsds_sample()
    doc["services"][0]["name"] = "Servicio\x00nuevo"
    return json.dumps(doc, ensure_ascii=escaped)  # "\u0000" escaped, or the character itself


DEEP_HSDS = '{"services": ' + "[" * 50_000 + "]" * 50_000 + "}"


@pytest.mark.parametrize(
    ("content", "fmt", "message"),
    [
        (NUL_CSV, "csv", "NUL"),
        (NUL_CSV.encode(), "csv", "NUL"),
        (nul_hsds(escaped=True), "hsds", "NUL"),
        (nul_hsds(escaped=False), "hsds", "NUL"),
        (DEEP_HSDS, "hsds", "nested too deep"),
    ],
)
def test_files_the_database_would_refuse_fail_the_dry_run(
    app: Any, content: str | bytes, fmt: str, message: str
) -> None:
    with pytest.raises(directory_io.ImportFileError, match=message):
        dry_run(content, fmt)


def test_a_literal_backslash_u0000_is_text_not_nul(app: Any) -> None:
    doc = hsds_sample()
    doc["services"][0]["description"] = "escribe \\u0000 tal cual"  # a backslash, then u0000
    plan = dry_run(json.dumps(doc), "hsds")
    assert plan.to_apply > 0


@pytest.mark.parametrize(
    ("content", "fmt", "name"),
    [(NUL_CSV, "csv", "d.csv"), (nul_hsds(True), "hsds", "d.json"), (DEEP_HSDS, "hsds", "d.json")],
)
def test_the_import_page_refuses_them_with_a_400(
    editor: Any,  # noqa: F811
    content: str,
    fmt: str,
    name: str,
) -> None:
    before = count(Service)
    response = upload(editor, content, fmt=fmt, name=name)
    assert response.status_code == 400
    assert 'id="import-error"' in response.get_data(as_text=True)
    assert count(Service) == before
