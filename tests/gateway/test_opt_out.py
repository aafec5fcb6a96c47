"""STOP: one confirmation, then silence (nothing sent or queued) until START."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from providers.fake_provider import FakeProviderServer
from ruta.contacts import find_contact
from ruta.db import db
from ruta.models import Contact, Message
from tests.conftest import PERSON, TwilioPhone
from tests.gateway.test_africastalking_webhook import AtPhone


@pytest.mark.parametrize("word", ["STOP", "baja", " Alto ", "CANCELAR", "parar"])
def test_stop_confirms_once_then_silence(phone: TwilioPhone, word: str) -> None:
    phone.text("HOLA")
    confirmation = phone.text(word)
    assert "no le enviaremos mas mensajes" in confirmation
    assert phone.text("HOLA") == ""
    assert phone.text("1") == ""
    assert phone.text(word) == ""  # no second confirmation
    with db.transaction() as session:
        assert _person(session).opted_out is True
        replies = session.scalars(select(Message).where(Message.direction == "out")).all()
    assert len(replies) == 2  # the menu and the one confirmation


def test_start_brings_the_contact_back(phone: TwilioPhone) -> None:
    phone.text("HOLA")
    phone.text("STOP")
    reply = phone.text("START")
    assert "Hola otra vez" in reply and "1 Buscar servicios" in reply
    with db.transaction() as session:
        assert _person(session).opted_out is False


def test_stop_over_africastalking_queues_nothing_more(
    app: Any, client: Any, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    phone = AtPhone(client)
    phone.post("HOLA")
    worker()
    phone.post("BAJA")
    worker()
    assert len(fake_provider.messages()) == 2
    for text in ("HOLA", "1", "ayuda"):
        phone.post(text)
    queued = sum(q.count for q in _queues(app))
    assert queued == 0
    worker()
    assert len(fake_provider.messages()) == 2
    assert "ALTA" in fake_provider.messages()[-1]["body"]
    phone.post("ALTA")
    worker()
    assert "Hola otra vez" in fake_provider.messages()[-1]["body"]


def test_a_queued_reply_is_not_sent_after_opt_out(
    app: Any, client: Any, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    """A reply queued before STOP arrives is suppressed at send time."""
    phone = AtPhone(client)
    phone.post("HOLA")  # reply queued, not yet sent
    with db.transaction() as session:
        _person(session).opted_out = True
    worker()
    assert fake_provider.messages() == []
    with db.transaction() as session:
        out = session.scalars(select(Message).where(Message.direction == "out")).one()
        assert out.status == "suppressed"


def _queues(app: Any) -> list[Any]:
    from ruta.jobqueue import queues

    return queues(app.extensions["ruta.redis"], app.config["RUTA_QUEUE_PREFIX"])


def _person(session: Any) -> Contact:
    found = find_contact(session, PERSON)
    assert found is not None
    return found
