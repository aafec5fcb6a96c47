"""The same walk over Africa's Talking: replies go out through RQ and the real SDK."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from providers.fake_provider import FakeProviderServer
from ruta.models import Message
from tests.conftest import AT_TOKEN, PERSON, count


class AtPhone:
    def __init__(self, client: Any, number: str = PERSON) -> None:
        self.client, self.number, self.sent = client, number, 0

    def post(self, text: str, *, token: str = AT_TOKEN, message_id: str | None = None) -> Any:
        self.sent += 1
        return self.client.post(
            f"/webhooks/africastalking/{token}/sms",
            data={
                "from": self.number,
                "to": "12345",
                "text": text,
                "date": "2026-11-23 10:00:00",
                "id": message_id or f"at-{self.sent:08d}",
                "linkId": "",
            },
        )


def test_find_a_service_over_africastalking(
    client: Any, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    phone = AtPhone(client)
    for text in ("HOLA", "1", "upala", "salud"):
        response = phone.post(text)
        assert response.status_code == 200
        assert response.data == b""  # AT replies go out by API, not in the response
    assert fake_provider.messages() == []  # nothing is sent until a worker runs
    worker()
    sent = fake_provider.messages("africastalking")
    assert [m["to"] for m in sent] == [PERSON] * 4
    assert all(m["from"] == "RUTA" for m in sent)
    assert "1 Buscar servicios" in sent[0]["body"]
    assert "Ebais Upala Centro" in sent[-1]["body"]
    assert "Tel +506 0000 0102" in sent[-1]["body"]
    assert count(Message) == 8
    from sqlalchemy import select

    from ruta.db import db

    with db.transaction() as session:
        statuses = set(session.scalars(select(Message.status).where(Message.direction == "out")))
        ids = set(
            session.scalars(select(Message.provider_message_id).where(Message.direction == "out"))
        )
    assert statuses == {"sent"}
    assert ids == {m["id"] for m in sent}


def test_wrong_token_is_404_and_stores_nothing(client: Any) -> None:
    response = AtPhone(client).post("HOLA", token="guessed-token")
    assert response.status_code == 404
    assert count(Message) == 0


def test_redelivered_at_message_does_nothing_new(
    client: Any, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    phone = AtPhone(client)
    for _ in range(3):
        assert phone.post("HOLA", message_id="at-same").status_code == 200
    worker()
    assert len(fake_provider.messages("africastalking")) == 1
    assert count(Message) == 2


def test_transient_provider_error_is_retried(
    app: Any, client: Any, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    fake_provider.script("africastalking", [{"http_status": 500}])
    AtPhone(client).post("HOLA")
    worker()  # first attempt fails; RQ schedules a retry
    assert fake_provider.messages() == []
    from rq import Queue
    from rq.registry import ScheduledJobRegistry
    from rq.serializers import JSONSerializer

    queue = Queue(
        "ruta-test-high", connection=app.extensions["ruta.redis"], serializer=JSONSerializer
    )
    registry = ScheduledJobRegistry(queue=queue)
    job_ids = registry.get_job_ids()
    assert len(job_ids) == 1  # waiting for its backoff
    for job_id in job_ids:  # move the clock: run the retry now
        registry.remove(job_id)
        queue.enqueue_job(queue.fetch_job(job_id))
    worker()
    assert len(fake_provider.messages("africastalking")) == 1
