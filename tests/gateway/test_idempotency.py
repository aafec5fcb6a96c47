"""A redelivered MessageSid: one inbound row, the same TwiML, the conversation advanced once."""

from __future__ import annotations

import json
import threading
from typing import Any

from flask import Flask
from sqlalchemy import select

from ruta.db import db
from ruta.models import ConversationSession, Message
from tests.conftest import TwilioPhone, count


def _state() -> dict[str, Any]:
    with db.transaction() as session:
        return json.loads(session.scalars(select(ConversationSession.state)).one())


def test_same_message_sid_five_times(phone: TwilioPhone) -> None:
    phone.text("HOLA")
    params = phone.params("1")
    answers = [phone.post(params).data for _ in range(5)]
    assert len(set(answers)) == 1
    assert b"municipio" in answers[0]
    with db.transaction() as session:
        inbound = session.scalars(
            select(Message).where(Message.provider_message_id == params["MessageSid"])
        ).all()
    assert len(inbound) == 1
    assert count(Message) == 4  # two in, two out
    # Advanced once: still on the municipality menu, so "1" now picks a municipality.
    assert _state()["node"] == "municipality"
    assert "tipo de servicio" in phone.text("1")


def test_concurrent_redeliveries_advance_once(app: Flask, phone: TwilioPhone) -> None:
    phone.text("HOLA")
    params = phone.params("1")
    answers: list[bytes] = []

    def deliver() -> None:
        with app.test_client() as client:
            answers.append(TwilioPhone(client).post(params).data)

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 5 and len(set(answers)) == 1
    assert count(Message) == 4
    assert _state()["node"] == "municipality"


def test_two_different_messages_at_once_are_serialised(app: Flask, phone: TwilioPhone) -> None:
    """Two messages of one person at the same moment: both handled, state not corrupted."""
    phone.text("HOLA")
    first, second = phone.params("1"), phone.params("upala")
    answers: list[int] = []

    def deliver(params: dict[str, str]) -> None:
        with app.test_client() as client:
            answers.append(TwilioPhone(client).post(params).status_code)

    threads = [threading.Thread(target=deliver, args=(p,)) for p in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200, 200]
    assert count(Message) == 6
    # Whichever came first, the state is one of the two consistent outcomes, never a mix.
    state = _state()
    assert state["node"] in ("municipality", "category")
    assert len(state["history"]) in (2, 3)
