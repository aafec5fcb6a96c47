"""`ruta flows validate` names each mistake (flow, node, language) and exits non-zero."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner
from flask import Flask
from sqlalchemy import delete

from cli import main
from ruta.db import db
from ruta.models import Municipality

BROKEN = Path(__file__).parent / "data" / "broken"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_each_mistake_is_named_and_the_exit_is_non_zero() -> None:
    code, output = run("flows", "validate", "--dir", str(BROKEN))
    assert code == 1
    assert "flow[main] node[orphan]: unreachable from the start node" in output
    assert "flow[main] node[menu]: target 'nowhere' does not exist" in output
    assert "flow[main] node[one] lang[en]: missing translation of 'text'" in output
    assert "flow[main] node[long] lang[es]: reply is 3 SMS segments (GSM-7" in output
    assert "the limit is 2" in output
    assert "flow[main] node[long]: variable 'never_set' is used before any path sets it" in output


def test_the_default_flows_are_valid() -> None:
    code, output = run("flows", "validate")
    assert code == 0, output
    assert output.strip().endswith("0 errors, 2 warnings")


def test_a_tighter_budget_is_enforced() -> None:
    code, output = run("flows", "validate", "--max-segments", "1")
    assert code == 1
    assert "the limit is 1" in output


def test_flow_examples_pass_and_a_failing_one_fails(tmp_path: Path) -> None:
    code, output = run("flows", "test")
    assert code == 0, output
    assert "0 failed" in output
    for source in (Path(__file__).parents[2] / "flows" / "definitions").glob("*.yaml"):
        (tmp_path / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    main_flow = tmp_path / "main.yaml"
    main_flow.write_text(
        main_flow.read_text(encoding="utf-8").replace(
            'expect: ["1 Find services"]', 'expect: ["1 Something else"]', 1
        ),
        encoding="utf-8",
    )
    code, output = run("flows", "test", "--dir", str(tmp_path))
    assert code == 1
    assert "FAIL main: the main menu in English" in output
    assert "reply lacks '1 Something else'" in output


def test_unreadable_yaml_is_reported_not_crashed(tmp_path: Path) -> None:
    (tmp_path / "settings.yaml").write_text((BROKEN / "settings.yaml").read_text("utf-8"), "utf-8")
    (tmp_path / "main.yaml").write_text("flow: main\nnodes: [unclosed\n", encoding="utf-8")
    code, output = run("flows", "validate", "--dir", str(tmp_path))
    assert code == 1
    assert "main.yaml: not valid YAML" in output


def test_a_kind_of_help_outside_the_taxonomy_is_an_error(tmp_path: Path) -> None:
    for source in (Path(__file__).parents[2] / "flows" / "definitions").glob("*.yaml"):
        (tmp_path / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    ask_help = tmp_path / "ask_help.yaml"
    text = ask_help.read_text(encoding="utf-8")
    text = text.replace("value: documents,", "value: legal,", 1)
    text = text.replace('      category: "{category}"\n', "      category: danger\n", 1)
    ask_help.write_text(text, encoding="utf-8")
    code, output = run("flows", "validate", "--dir", str(tmp_path))
    assert code == 1
    assert "flow[ask_help] node[kind]: 'legal' is not a kind of help" in output
    assert "flow[ask_help] node[create]: 'danger' is not a kind of help" in output


#: As long as the column allows (120 characters, as PostgreSQL enforces), accented.
LONG_PLACE = (
    "Santa María de los Ángeles del Río Ñuñoa, Cañón Grande de la Frontera Norte, Comarca "
    "Ngäbe-Buglé de Chiriquí, Panamá"
)
assert len(LONG_PLACE) <= 120


def test_the_database_directory_is_checked_and_a_place_that_breaks_a_menu_is_named(
    app: Flask, monkeypatch: Any
) -> None:
    """Issue 13, test 2: `ruta flows validate` renders menus with the database's directory."""
    for name in ("RUTA_SECRET_KEY", "RUTA_DATA_KEY", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.setenv(name, app.config[name])
    code, output = run("flows", "validate")
    assert code == 0, output  # the demo directory fits
    with db.transaction() as session:
        session.add(Municipality(code="pa-long", name=LONG_PLACE, country="PA"))
    try:
        code, output = run("flows", "validate")
    finally:
        with db.transaction() as session:
            session.execute(delete(Municipality).where(Municipality.code == "pa-long"))
    assert code == 1
    assert LONG_PLACE in output
    assert "node[municipality]" in output and "directory[PA]" in output
