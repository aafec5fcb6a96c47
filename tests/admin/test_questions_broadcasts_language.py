"""The questions and broadcasts pages say nothing in the other language: every message id of
the catalogue (English) is absent from the Spanish pages, and every Spanish translation from the
English pages, data (people's words, titles) aside."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po
from flask import Flask
from sqlalchemy import select

from ruta import contacts
from ruta.db import db
from ruta.models import Question, User
from ruta.questions import new_reference
from tests.admin.conftest import csrf_token, login
from tests.admin.test_broadcasts_admin import create, latest, subscribe

CATALOGUE = Path(__file__).parents[2] / "admin/translations/es/LC_MESSAGES/messages.po"
PLACEHOLDER = re.compile(r"%\(\w+\)s|\{\w+\}")


def _pairs() -> list[tuple[str, str]]:
    with CATALOGUE.open("rb") as handle:
        catalogue = read_po(handle)
    pairs = []
    for message in catalogue:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        pairs += [(ids[min(i, len(ids) - 1)], s) for i, s in enumerate(strings)]
    return pairs


def _fragments(text: str) -> list[str]:
    """The words of a message between its placeholders, long enough to mean something."""
    return [f.strip(" .,:;()") for f in PLACEHOLDER.split(text) if len(f.strip(" .,:;()")) >= 4]


def _readable(page: str) -> str:
    """What a reader meets: the text, and the attributes shown or spoken (labels for the
    counter, placeholders, titles)."""
    page = re.sub(r"<script.*?</script>", " ", page, flags=re.S)
    shown = re.findall(r'(?:data-label-\w+|placeholder|aria-label|title)="([^"]*)"', page)
    text = re.sub(r"<[^>]+>", " ", page)
    return html.unescape(" ".join([text, *shown]))


def _absent(page: str, words: list[str], data: list[str]) -> list[str]:
    readable = _readable(page)
    for datum in data:
        readable = readable.replace(datum, " ")
    return [w for w in words if re.search(rf"(?<!\w){re.escape(w)}(?!\w)", readable)]


@pytest.fixture()
def pages(app: Flask, client: Any, accounts: dict[str, str]) -> Iterator[Any]:
    """The coordinator's questions and broadcasts pages, in a language."""
    with db.transaction() as session:
        person = contacts.lock_contact(session, "+50688007766")
        question = Question(
            reference=new_reference(session),
            contact_id=person.id,
            channel="twilio",
            language="es",
            country="CR",
            text="Donde renuevo mi permiso?",
            created_at=datetime(2026, 11, 24, 18, 0, tzinfo=UTC),
        )
        session.add(question)
        session.flush()
        question_id = question.id
    subscribe()

    def fetch(language: str) -> list[str]:
        with db.transaction() as session:
            user = session.scalar(select(User).where(User.email == accounts["coordinator"]))
            assert user is not None
            user.language = language
        login(client, accounts["coordinator"])
        create(client, text_es="Atención: la unidad móvil visita Upala.", text_en="")
        broadcast_id = latest().id
        token = csrf_token(client.get("/admin/questions/").get_data(as_text=True))
        refused = client.post(
            f"/admin/questions/{question_id}/answer",
            data={"answer": "á" * 200, "csrf_token": token},
        )
        unconfirmed = client.post(
            f"/admin/questions/{question_id}/close", data={"csrf_token": token}
        )
        urls = [
            "/admin/questions/",
            f"/admin/questions/{question_id}",
            "/admin/broadcasts/",
            "/admin/broadcasts/new",
            f"/admin/broadcasts/{broadcast_id}",
        ]
        got = [client.get(url).get_data(as_text=True) for url in urls]
        with db.transaction() as session:
            user = session.scalar(select(User).where(User.email == accounts["coordinator"]))
            assert user is not None
            user.phone = "+50688997766"
        got.append(client.get(f"/admin/broadcasts/{broadcast_id}").get_data(as_text=True))
        bad = client.post(
            "/admin/broadcasts/new",
            data={
                "title": "",
                "municipality": "cr-upala",
                "csrf_token": token,
                "scheduled_at": "mañana",
                "topic": "x",
            },
        )
        return [
            *got,
            refused.get_data(as_text=True),
            unconfirmed.get_data(as_text=True),
            bad.get_data(as_text=True),
        ]

    yield fetch


#: What a page shows that is data, not interface: people's words, titles, the SMS's start and
#: stop lines (quoted in the instructions too), the users' addresses.
DATA = [
    "Donde renuevo mi permiso?",
    "Unidad movil",
    "Ruta: respuesta a su pregunta",  # the start of the SMS, in the person's language
    "To receive no more: STOP",
    "Para no recibir mas: BAJA",
    "@ruta.test",
]


#: Messages written the same in both languages.
SAME = {"SMS", "USSD", "Ruta"}


def _words(language: str) -> list[str]:
    """The fragments of the catalogue's messages in ``language`` that the other language's
    messages do not hold too; a translation left equal to its English fails."""
    pairs = _pairs()
    mine = {
        f
        for msgid, msgstr in pairs
        if msgid not in SAME
        for f in _fragments(msgid if language == "en" else msgstr)
    }
    theirs = {
        f
        for msgid, msgstr in pairs
        if msgid != msgstr
        for f in _fragments(msgstr if language == "en" else msgid)
    }
    return sorted(mine - theirs)


def test_the_spanish_pages_have_no_english_message(pages: Any) -> None:
    english = _words("en")
    for page in pages("es"):
        assert '<html lang="es">' in page
        assert _absent(page, english, DATA) == []


def test_the_english_pages_have_no_spanish_message(pages: Any) -> None:
    spanish = _words("es")
    for page in pages("en"):
        assert '<html lang="en">' in page
        assert _absent(page, spanish, DATA) == []
