"""A database that hangs or stays locked loses no inbound message (issue 12): every webhook
answers within 5 s, what it received waits encrypted in the spool, and once the database is back
a worker processes it once, in order, and the replies go out through the provider's API."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from sqlalchemy import select

from providers.fake_provider import FakeProviderServer
from ruta import spool
from ruta.db import db
from ruta.models import Message
from tests.conftest import AT_TOKEN, PERSON, TwilioPhone
from tests.gateway.test_africastalking_webhook import AtPhone
from tests.gateway.test_ussd import AtHandset
from tests.outage import proxied, write_locked
from workers.spool_jobs import drain_spool

#: Twilio gives up on a webhook after 15 s; Ruta answers well within that.
ANSWER_WITHIN = 5.0
AT_PERSON = "+50688003344"


@contextmanager
def outage(prepared: dict[str, Any]) -> Iterator[None]:
    """The database stops answering for the block: PostgreSQL behind a proxy that hangs (its
    pooled connection included), SQLite behind a write lock another connection holds."""
    url = prepared["DATABASE_URL"]
    if url.startswith("sqlite"):
        with write_locked(url):
            yield
        return
    with proxied(url) as (through, proxy):
        db.init(through, timeout=db.timeout)
        try:
            with db.transaction() as session:
                session.execute(select(1))  # a pooled connection that will hang, too
            proxy.hang()
            yield
        finally:
            proxy.resume()
            db.init(url, timeout=db.timeout)


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_a_hung_database_loses_no_message(
    app: Flask,
    client: Any,
    prepared: dict[str, Any],
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
) -> None:
    twilio, at = TwilioPhone(client), AtPhone(client, AT_PERSON)
    at.post("HOLA")  # before the outage: a reply the provider will report on
    worker()
    with db.transaction() as session:
        reported = session.scalar(
            select(Message.provider_message_id).where(Message.direction == "out")
        )
    assert reported
    fake_provider.reset()
    prefix = app.config["RUTA_QUEUE_PREFIX"]
    redis = app.extensions["ruta.redis"]

    with outage(prepared):
        answers = []
        for text in ("HOLA", "1", "upala"):
            response, seconds = timed(lambda text=text: twilio.post(twilio.params(text)))
            answers.append((response.status_code, seconds))
            assert b"<Message>" not in response.data  # no inline reply: it comes later
        response, seconds = timed(lambda: at.post("1"))
        answers.append((response.status_code, seconds))
        response, seconds = timed(
            lambda: client.post(
                f"/webhooks/africastalking/{AT_TOKEN}/delivery",
                data={"id": reported, "status": "Success", "phoneNumber": AT_PERSON},
            )
        )
        answers.append((response.status_code, seconds))
        (kind, screen), seconds = timed(lambda: AtHandset(client).post(""))
        answers.append((200, seconds))
        assert kind == "END" and "no disponible" in screen
        ready, seconds = timed(lambda: client.get("/readyz"))
        assert ready.status_code == 503 and seconds < 2.5
        assert all(code in (200, 204) for code, _ in answers), answers
        assert all(s < ANSWER_WITHIN for _, s in answers), answers
        assert spool.waiting(redis, prefix) == 5
        # Encrypted at rest in Redis too: no number, no text in the stream.
        raw = b"".join(
            v for _, fields in redis.xrange(spool.stream(prefix)) for v in fields.values()
        )
        assert PERSON.encode() not in raw and b"upala" not in raw

    worker()  # the drain job the webhooks asked for, then the replies it queued
    assert spool.waiting(redis, prefix) == 0
    replies = [m["body"] for m in fake_provider.messages() if m["to"] == PERSON]
    assert len(replies) == 3, replies
    assert "Buscar servicios" in replies[0] and "municipio" in replies[1]
    assert "tipo de servicio" in replies[2]  # in order: HOLA, 1, upala
    assert any(m["to"] == AT_PERSON for m in fake_provider.messages())
    with db.transaction() as session:
        inbound = session.scalars(
            select(Message.body).where(Message.direction == "in").order_by(Message.id)
        ).all()
        status = session.scalar(
            select(Message.status).where(Message.provider_message_id == reported)
        )
    assert inbound == ["HOLA", "HOLA", "1", "upala", "1"]  # each once, in the order sent
    assert status == "delivered"  # the report kept in the spool was applied
    with app.app_context():
        assert drain_spool() == 0  # nothing twice
    assert len([m for m in fake_provider.messages() if m["to"] == PERSON]) == 3


def test_readyz_answers_while_the_database_hangs(client: Any, prepared: dict[str, Any]) -> None:
    with outage(prepared):
        ready, took = timed(lambda: client.get("/readyz"))
    assert ready.status_code == 503 and took < 2.5
    assert "unreachable" in ready.get_json()["checks"]["database"]
