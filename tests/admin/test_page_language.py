"""No English on a Spanish page outside data, and no Spanish on an English one (issue 14, item 2).

Every admin page an admin can open (tests/admin/pages.py walks the URL map) is rendered in each
language and its visible text read: element text plus what assistive technology reads out
(``aria-label``, ``title``, ``alt``, ``placeholder``, button values). Not read: scripts, styles,
form values and textareas (what was typed is data), and anything marked as data in the template,
with ``translate="no"`` (codes, YAML, references) or a ``lang`` other than the page's (the people's
own words, language names in a language picker).

Names from the demo data (focal points, organisations, places, services) are taken out of the
text first: they are data whatever the page's language; so are flow keys and node ids on the
flows pages. Checks, using the catalogue's own list of
messages:
- es: no msgid whose Spanish differs shows (a string wrapped but not translated, or shown raw),
  and no common English word (a string never wrapped in ``_()``); the demo data is Spanish, so an
  English word outside data is the interface's.
- en: no Spanish msgstr shows (a translation leaking into English).

Offenders are listed by page in the failure and in test-artifacts/language/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po
from flask import Flask

from tests.admin.conftest import Browser, login
from tests.admin.pages import Page, admin_pages, sample_ids

CATALOGUE = Path(__file__).parents[2] / "admin/translations/es/LC_MESSAGES/messages.po"
REPORT = Path(__file__).parents[2] / "test-artifacts" / "language"

#: Sections with words of the other language left after the merge of issue 14's branches
#: (endpoint prefixes, per language), for their owners to mark as data or translate.

#: English words that are not Spanish words too ("no", "a", "general" are both).
ENGLISH = frozenset(
    """the and of with to is are yes or for from this that these those not none your you will
    be by in on at an was were been there which what when where who how than then into only
    should must can cannot could would here its it our we they them their
    save edit delete cancel back next previous search filter add new name email password
    home log out send close open view show all any page older newer edit submit remove
    update create change settings account point points case cases question questions
    broadcast broadcasts figures directory flows audit agreement agreements chain chains
    kind kinds active inactive expired expires renew country municipality number reference
    organisation organization action object detail entries entry""".split()  # noqa: SIM905
)
WORD = re.compile(r"[^\W\d_]+")
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%[sd]")
VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "wbr"}
    | {"source", "track"}
)
NOT_READ = frozenset({"script", "style", "textarea", "template", "noscript"})
READ_ATTRIBUTES = ("aria-label", "title", "alt", "placeholder")


class VisibleText(HTMLParser):
    """The text a reader sees or hears, data left out (see the module's docstring)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page_language = ""
        self.parts: list[str] = []
        self.stack: list[tuple[str, bool]] = []  # (tag, skipped)

    @property
    def skipping(self) -> bool:
        return any(skipped for _tag, skipped in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "html":
            self.page_language = attributes.get("lang") or ""
        lang = attributes.get("lang")
        skipped = (
            tag in NOT_READ
            or attributes.get("translate") == "no"
            or (tag != "html" and lang is not None and lang != self.page_language)
        )
        if not self.skipping and not skipped:
            for name in READ_ATTRIBUTES:
                if attributes.get(name):
                    self.parts.append(str(attributes[name]))
            if tag == "input" and attributes.get("type") in ("submit", "button", "reset"):
                self.parts.append(attributes.get("value") or "")
        if tag not in VOID:
            self.stack.append((tag, skipped))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID and self.stack:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        # Browsers forgive a missing end tag; so does this (pop to the matching start).
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    parser.close()
    return parser.text


def _pattern(message: str) -> re.Pattern[str] | None:
    """A message as a regex: placeholders match any short text; None when too short to tell."""
    if "<" in message:
        return None
    pieces = PLACEHOLDER.split(" ".join(message.split()))
    letters = sum(len(w) for p in pieces for w in WORD.findall(p))
    # "de %(who)s, %(when)s" would match any Spanish name followed by a comma.
    if letters < (5 if len(pieces) > 1 else 3):
        return None
    body = ".{1,80}?".join(r"\s+".join(map(re.escape, p.split())) for p in pieces)
    return re.compile(r"(?<!\w)" + body + r"(?!\w)")


def _messages() -> list[tuple[str, str]]:
    """(English, Spanish) pairs of the catalogue whose two sides differ."""
    with CATALOGUE.open("rb") as handle:
        catalogue = read_po(handle)
    pairs = []
    for message in catalogue:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for english, spanish in zip(ids, strings, strict=False):
            if spanish and english.strip().lower() != spanish.strip().lower():
                pairs.append((english, spanish))
    return pairs


def _checks(language: str) -> list[tuple[str, re.Pattern[str]]]:
    """The messages of the other language to look for, with their patterns. One that is also
    part of a message of this language (a Spanish word inside a Spanish sentence) is left out."""
    pairs = _messages()
    own = [spanish if language == "es" else english for english, spanish in pairs]
    other = [english if language == "es" else spanish for english, spanish in pairs]
    checks = []
    for message in sorted(set(other)):
        pattern = _pattern(message)
        if pattern is not None and not any(pattern.search(text) for text in own):
            checks.append((message, pattern))
    return checks


def data_names() -> list[str]:
    """Names in the demo data (focal points, organisations, places, services), longest first:
    a Spanish name on an English page ("Punto focal Upala") is data, not a leaked translation."""
    from sqlalchemy import select

    from ruta.db import db
    from ruta.models import FocalPoint, Location, Municipality, Organization, Service

    with db.transaction() as session:
        names = {
            str(name)
            for model in (FocalPoint, Organization, Municipality, Service, Location)
            for name in session.scalars(select(model.name))
            if name
        }
    return sorted(names, key=len, reverse=True)


def flow_identifiers() -> list[str]:
    """Flow keys and node ids, identifiers written in the flows' YAML: data on the flows pages
    (the graph's boxes name their node on hover), as a directory name is on any page."""
    import yaml
    from sqlalchemy import select

    from ruta.db import db
    from ruta.models import FlowVersion

    found: set[str] = set()
    with db.transaction() as session:
        for key, source in session.execute(select(FlowVersion.flow_key, FlowVersion.source)):
            found.add(key)
            found.update((yaml.safe_load(source) or {}).get("nodes") or {})
    return sorted(found, key=len, reverse=True)


def without_data(text: str, names: list[str], identifiers: Sequence[str] = ()) -> str:
    for name in names:
        text = text.replace(name, " ")
    for identifier in identifiers:
        text = re.sub(rf"(?<![\w-]){re.escape(identifier)}(?![\w-])", " ", text)
    return text


def offenders(text: str, language: str, checks: list[tuple[str, re.Pattern[str]]]) -> list[str]:
    found = [f"message {message!r}" for message, pattern in checks if pattern.search(text)]
    if language == "es":
        words = sorted({w for w in WORD.findall(text) if w.lower() in ENGLISH})
        found += [f"English word {word!r}" for word in words]
    return found


def _crawl(app: Flask, email: str, language: str, pages: list[Page]) -> Iterator[tuple[Page, str]]:
    anonymous, client = Browser(app), Browser(app)
    assert login(client, email).status_code == 302
    for page in pages:
        visitor = anonymous if page.endpoint == "admin_auth.login" else client
        response = visitor.get(page.url)
        assert response.status_code == 200, (page.url, response.status_code)
        html = response.get_data(as_text=True)
        assert f'<html lang="{language}">' in html, page.url
        yield page, visible_text(html)


@pytest.mark.parametrize("language", ["es", "en"])
def test_no_word_of_the_other_language_on_any_admin_page(
    app: Flask, accounts: dict[str, str], sample_case: dict[str, Any], language: str
) -> None:
    pages = admin_pages(app, sample_ids(sample_case))
    checks, names, identifiers = _checks(language), data_names(), flow_identifiers()
    app.config["RUTA_ADMIN_LANGUAGE"] = language
    try:
        found = {
            page: offenders(
                without_data(
                    text, names, identifiers if page.endpoint.startswith("admin_flows.") else []
                ),
                language,
                checks,
            )
            for page, text in _crawl(app, accounts["admin"], language, pages)
        }
    finally:
        app.config["RUTA_ADMIN_LANGUAGE"] = "en"
    report = "\n".join(
        f"{page.url} [{page.endpoint}]:\n    " + "\n    ".join(problems)
        for page, problems in found.items()
        if problems
    )
    REPORT.mkdir(parents=True, exist_ok=True)
    (REPORT / f"offenders-{language}.txt").write_text(report + "\n", encoding="utf-8")
    print(f"\nPages in {language} with words of the other language:\n{report or 'none'}")
    failing = [p.url for p, problems in found.items() if problems]
    assert not failing, f"words of the other language on {failing}:\n{report}"


def test_the_check_finds_an_unwrapped_string_and_an_untranslated_message() -> None:
    checks = _checks("es")
    page = (
        '<html lang="es"><body><h1>Mi cuenta</h1><p>Save the chain</p>'
        '<p translate="no">the data</p><p lang="en">English</p><textarea>and more</textarea>'
        '<button aria-label="Log out">x</button></body></html>'
    )
    found = offenders(visible_text(page), "es", checks)
    assert "message 'Log out'" in found
    assert "English word 'Save'" in found and "English word 'the'" in found
    assert not any("data" in f or "more" in f or "English'" in f for f in found)
    spanish = '<html lang="en"><body><p>Cerrar sesión</p></body></html>'
    assert "message 'Cerrar sesión'" in offenders(visible_text(spanish), "en", _checks("en"))
