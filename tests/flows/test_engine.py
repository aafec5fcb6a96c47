"""The engine on small flows: keywords, menus, asks, branches, loops, paging, substitution."""

from __future__ import annotations

import copy
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from flows.context import Budget
from flows.engine import ContactView, Engine, StepResult
from flows.loader import DEFINITIONS_DIR, SETTINGS_FILE, parse_flow, parse_settings
from flows.model import Library
from flows.nodes import KINDS
from flows.text import fill, fold
from flows.validate import validate_library
from ruta.db import db
from ruta.directory import DatabaseServices

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def library(*flows: dict[str, Any]) -> Library:
    lib = Library(parse_settings((DEFINITIONS_DIR / SETTINGS_FILE).read_text("utf-8")))
    for number, doc in enumerate(flows, 1):
        lib.add(parse_flow(yaml.safe_dump(doc, allow_unicode=True), version=number))
    return lib


def flow(nodes: dict[str, Any], key: str = "main", start: str | None = None) -> dict[str, Any]:
    return {
        "flow": key,
        "languages": ["es", "en"],
        "start": start or next(iter(nodes)),
        "nodes": nodes,
    }


@pytest.fixture()
def session(app: Flask) -> Iterator[Session]:
    with db.transaction() as s:
        yield s


class Talk:
    def __init__(self, engine: Engine, session: Session, language: str | None = "es") -> None:
        self.engine, self.session = engine, session
        self.state: dict[str, Any] | None = None
        self.contact = ContactView(language)
        self.now = NOW
        self.budget = Budget("sms", 2)

    def send(self, text: str) -> StepResult:
        result = self.engine.step(
            self.state,
            self.contact,
            text,
            services=DatabaseServices(self.session, channel="test", contact_id=None),
            budget=self.budget,
            now=self.now,
        )
        self.state = result.state
        return result


ASK_AGE = flow(
    {
        "age": {
            "type": "ask",
            "text": {"es": "Edad?", "en": "Age?"},
            "save_as": "age",
            "validate": {"type": "number", "min": 0, "max": 120},
            "max_attempts": 2,
            "next": "check",
        },
        "check": {
            "type": "branch",
            "cases": [{"if": {"var": "age", "lt": 18}, "goto": "minor"}],
            "default": "adult",
        },
        "minor": {"type": "end", "text": {"es": "Menor: {age}.", "en": "Minor: {age}."}},
        "adult": {"type": "end", "text": {"es": "Adulto: {age}.", "en": "Adult: {age}."}},
    }
)


def test_ask_validates_reasks_and_gives_up(session: Session) -> None:
    talk = Talk(Engine(library(ASK_AGE)), session)
    assert talk.send("HOLA").text == "Edad?"
    again = talk.send("doce")
    assert "No entendimos" in again.text and again.text.endswith("Edad?")
    assert "No pudimos continuar" in talk.send("200").text
    assert talk.state is not None and talk.state["ended"]


def test_branch_routes_on_the_saved_answer(session: Session) -> None:
    talk = Talk(Engine(library(ASK_AGE)), session)
    talk.send("HOLA")
    assert talk.send("12").text == "Menor: 12."
    talk.send("HOLA")
    assert talk.send(" 40 ").text == "Adulto: 40."


@pytest.mark.parametrize("word", ["salud", "Salud", "SALÚD", "  sAlUd "])
def test_menu_keywords_ignore_case_and_accents(session: Session, word: str) -> None:
    menu = flow(
        {
            "m": {
                "type": "menu",
                "text": {"es": "Elija", "en": "Choose"},
                "options": [
                    {"label": {"es": "Empleo", "en": "Work"}, "goto": "work"},
                    {
                        "label": {"es": "Salud", "en": "Health"},
                        "keywords": {"es": ["clinica"]},
                        "goto": "health",
                    },
                ],
            },
            "work": {"type": "end", "text": {"es": "E", "en": "W"}},
            "health": {"type": "end", "text": {"es": "Ok salud", "en": "Ok health"}},
        }
    )
    talk = Talk(Engine(library(menu)), session)
    talk.send("HOLA")
    assert talk.send(word).text == "Ok salud"
    talk.send("HOLA")
    assert talk.send("CLÍNICA").text == "Ok salud"


def test_a_goto_loop_is_stopped_with_a_message(session: Session) -> None:
    loop = flow(
        {
            "a": {"type": "branch", "cases": [], "default": "b"},
            "b": {"type": "branch", "cases": [], "default": "a"},
        }
    )
    result = Talk(Engine(library(loop)), session).send("HOLA")
    assert result.has("loop_stopped")
    assert "Algo salio mal" in result.text


def test_dynamic_menus_page_with_nine_for_more(session: Session) -> None:
    talk = Talk(Engine(library(*_defaults())), session)
    talk.budget = Budget("sms", 1)  # a tight budget forces several pages
    talk.send("HOLA")
    first = talk.send("1").text
    assert first.splitlines()[-1] == "9 Mas"
    seen = set(first.splitlines()[1:-1])
    page = talk.send("9").text
    assert not seen & set(page.splitlines()[1:-1])  # the next page, not the same one
    assert "Upala" in first + page or "Upala" in talk.send("MAS").text
    for text in (first, page):
        assert Budget("sms", 1).fits(text)


def test_results_list_pages_within_the_budget(session: Session) -> None:
    talk = Talk(Engine(library(*_defaults())), session)
    talk.budget = Budget("sms", 1)
    for text in ("HOLA", "1", "upala"):
        talk.send(text)
    first = talk.send("salud").text
    assert Budget("sms", 1).fits(first)
    assert "9 Mas" in first
    pages = [first]
    while "9 Mas" in pages[-1]:
        pages.append(talk.send("9").text)
        assert Budget("sms", 1).fits(pages[-1])
    assert "Ebais Upala Centro" in "\n".join(pages)
    assert "HOLA: menu" in pages[-1]


def test_fill_never_reads_a_value_as_a_template() -> None:
    assert fill("Ref {reference}", {"reference": "{secret} %s {0}"}) == "Ref {secret} %s {0}"
    assert fill("{a.b} {missing}", {"a.b": "x"}) == "x "
    assert fill("{__class__} {x.__dict__}", {}) == " "  # unknown names are blanked, never looked up


def test_fold() -> None:
    assert fold("  SALÚD  Pública ") == "salud publica"
    assert fold("  HOLA \t Ruta\n") == "hola ruta"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0x7F)))
def test_fold_of_ascii_text_takes_the_short_way_to_the_same_answer(text: str) -> None:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    slow = " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())
    assert fold(text) == slow


def test_expired_session_starts_over(session: Session) -> None:
    talk = Talk(Engine(library(ASK_AGE), session_timeout=timedelta(minutes=30)), session)
    talk.send("HOLA")
    talk.now += timedelta(minutes=31)
    result = talk.send("12")
    assert result.has("session_expired")
    assert result.text.endswith("Edad?")


def test_each_node_kind_has_a_valid_example() -> None:
    """Coverage by construction: a new kind without a working example fails here."""
    for name, kind in KINDS.items():
        nodes = yaml.safe_load(kind.example)
        assert isinstance(nodes, dict) and len(nodes) == 1, name
        node_id, spec = next(iter(nodes.items()))
        assert spec["type"] == name
        doc = flow(dict(nodes), start=node_id)
        for target in kind.targets(parse_flow(yaml.safe_dump(doc)).nodes[node_id]):
            doc["nodes"][target] = {"type": "end"}
        if name == "goto":
            doc["nodes"][node_id]["flow"] = "main"
        lib = library(doc)
        errors = [i for i in validate_library(lib) if i.error and "used before" not in i.message]
        assert errors == [], (name, errors)


def _defaults() -> list[dict[str, Any]]:
    return [
        yaml.safe_load(path.read_text("utf-8"))
        for path in sorted(DEFINITIONS_DIR.glob("*.yaml"))
        if path.name != SETTINGS_FILE
    ]


def test_a_missing_translation_falls_back_to_the_default_language(session: Session) -> None:
    doc = flow({"hi": {"type": "end", "text": {"es": "Hola solo en es"}}})
    doc["languages"] = ["es", "en", "fr"]
    talk = Talk(Engine(library(doc)), session, language="fr")
    assert talk.send("HOLA").text == "Hola solo en es"


def _menu_with_counted_options(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A flow whose menu takes its options from a registered action that notes each run."""
    from flows.actions import ACTIONS, Action, ActionResult

    runs: list[str] = []

    def places(ctx: Any, args: dict[str, str]) -> ActionResult:
        runs.append(ctx.language)
        return ActionResult(
            value=[{"value": "1", "label": "Upala"}, {"value": "2", "label": "Escazú"}]
        )

    monkeypatch.setitem(ACTIONS, "counted_places", Action("counted_places", places))
    return runs


def test_a_menu_works_its_options_out_once_a_visit(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entering a menu lays it out and shows it; an answer that is not an option is matched and
    the menu shown again: each from the same options, the directory read once for each."""
    runs = _menu_with_counted_options(monkeypatch)
    doc = flow(
        {
            "m": {
                "type": "menu",
                "text": {"es": "Lugar", "en": "Place"},
                "options_action": "counted_places",
                "save_as": "place",
                "next": "done",
            },
            "done": {"type": "end", "text": {"es": "Listo: {place_label}", "en": "Done"}},
        }
    )
    talk = Talk(Engine(library(doc)), session)
    talk.budget = Budget("sms", 2, plain_labels=True)
    assert talk.send("HOLA").text == "Lugar\n1 Upala\n2 Escazu"
    assert runs == ["es"]
    assert talk.send("7").text.endswith("Lugar\n1 Upala\n2 Escazu")  # not an option: shown again
    assert runs == ["es", "es"]
    assert talk.send("escazu").text == "Listo: Escazu"
    assert runs == ["es", "es", "es"]


def test_a_step_leaves_the_callers_state_alone_unless_handed_over(session: Session) -> None:
    """A host may keep the state it passed (the simulator does); one that parsed it for this
    step alone hands it over with ``owned`` and is spared the copy, for the same result."""
    engine = Engine(library(ASK_AGE))
    talk = Talk(engine, session)
    talk.send("HOLA")
    kept = copy.deepcopy(talk.state)
    given = copy.deepcopy(talk.state)

    def step(state: dict[str, Any], owned: bool) -> StepResult:
        return engine.step(
            state,
            talk.contact,
            "12",
            services=DatabaseServices(session, channel="test", contact_id=None),
            budget=talk.budget,
            now=NOW,
            owned=owned,
        )

    copied = step(given, owned=False)
    assert given == kept
    assert copied.state is not given
    handed = step(given, owned=True)
    assert handed.state is given
    assert (handed.replies, handed.state, handed.events) == (
        copied.replies,
        copied.state,
        copied.events,
    )
