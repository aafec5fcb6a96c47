"""The lean inbound path (issue 11): an SMS or USSD step in at most three database round trips
and no ORM, per-process caches of the directory and flows that a change from the admin or the
command line reaches at the next message, what it stores read back by the ORM as the admin
reads it, and the webhooks served without the admin's machinery."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, delete, event, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from cli import main
from flows.loader import DEFINITIONS_DIR
from ruta import contacts, crypto, metrics, spool
from ruta.db import db
from ruta.directory import CACHED_TABLES
from ruta.models import (
    CacheVersion,
    Contact,
    ConversationSession,
    FlowVersion,
    Message,
    Municipality,
    UssdSession,
    utcnow,
)
from tests.admin.conftest import Browser, csrf_token, login
from tests.admin.conftest import accounts as accounts  # a fixture
from tests.conftest import PUBLIC_BASE_URL, TwilioPhone, sign
from tests.gateway.test_ussd import AtHandset

WALK = ("HOLA", "1", "upala", "salud")
REPO = Path(__file__).resolve().parents[2]


def postgresql() -> bool:
    assert db.engine is not None
    return db.engine.dialect.name == "postgresql"


@pytest.fixture()
def round_trips() -> Iterator[list[list[str]]]:
    """Every database round trip of this process while the test runs, counted in psycopg as
    the benchmarks count them (bench/measure.py): one list of statements each."""
    if not postgresql():
        pytest.skip("round trips are PostgreSQL's: SQLite runs in process")
    spec = importlib.util.spec_from_file_location("bench_measure", REPO / "bench" / "measure.py")
    assert spec is not None and spec.loader is not None
    measure = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = measure  # its dataclasses look their module up
    spec.loader.exec_module(measure)
    seen: list[list[str]] = []
    undo = measure.count_round_trips(seen.append)
    yield seen
    undo()


@pytest.fixture()
def orm_sessions() -> Iterator[list[Session]]:
    """Every ORM session that reached the database while the test runs."""
    used: list[Session] = []

    def began(session: Session, _transaction: Any, _connection: Any) -> None:
        used.append(session)

    event.listen(Session, "after_begin", began)
    yield used
    event.remove(Session, "after_begin", began)


def test_a_menu_walk_is_two_round_trips_a_message_without_the_orm(
    phone: TwilioPhone, round_trips: list[list[str]], orm_sessions: list[Session]
) -> None:
    for body in WALK:  # the contact is created, the caches filled
        phone.text(body)
    assert db.engine is not None
    lock = contacts.lock(contacts.hash_values(phone.number), utcnow())[0].form(db.engine.dialect)
    assert lock.sql.startswith("UPDATE contacts")
    for body in WALK:
        round_trips.clear()
        orm_sessions.clear()
        reply = phone.text(body)
        assert reply
        assert len(round_trips) == 2, (body, round_trips)
        sent = ";\n".join(round_trips[0] + round_trips[1]).split(";\n")
        assert sent[0] == "BEGIN" and sent[-1] == "COMMIT"  # one transaction
        assert sent[1].startswith(f"EXECUTE {lock.name}(")  # the lock comes first
        assert all(s.startswith("EXECUTE ") for s in sent[1:-1])  # each prepared before
        assert orm_sessions == [], body


def test_a_new_number_takes_three_round_trips(
    client: Any, round_trips: list[list[str]], orm_sessions: list[Session]
) -> None:
    TwilioPhone(client, "+50688007001").text("HOLA")  # warm caches
    round_trips.clear()
    orm_sessions.clear()
    assert "Buscar servicios" in TwilioPhone(client, "+50688007002").text("HOLA")
    assert len(round_trips) == 3, round_trips  # the contact is created in the second
    assert orm_sessions == []


def test_a_ussd_walk_on_a_new_number_is_at_most_three_round_trips_a_screen(
    client: Any, round_trips: list[list[str]], orm_sessions: list[Session]
) -> None:
    warm = AtHandset(client, "+50688007003")
    warm.dial()
    for key in ("1", "5", "1"):
        warm.press(key)
    round_trips.clear()
    orm_sessions.clear()
    handset = AtHandset(client, "+50688007004")
    counts = []
    screens = [handset.dial()]
    counts.append(len(round_trips))
    for key in ("1", "5", "1"):
        round_trips.clear()
        screens.append(handset.press(key)[1])
        counts.append(len(round_trips))
    assert "Upala" in screens[1] and "Recibir todo por SMS" in screens[3]
    assert counts == [3, 2, 2, 2], counts
    assert orm_sessions == []


def test_a_digit_from_someone_never_asked_to_rate_reads_no_case(
    phone: TwilioPhone, orm_sessions: list[Session]
) -> None:
    phone.text("HOLA")
    phone.text("1")  # the places are cached
    phone.text("HOLA")
    orm_sessions.clear()
    statements: list[str] = []
    assert db.engine is not None

    def seen(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        statements.append(sql)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        assert "municipio" in phone.text("1")
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert orm_sessions == [] and not [s for s in statements if "FROM cases" in s]


# --- caches -----------------------------------------------------------------------------------


def municipality_menu(phone: TwilioPhone) -> str:
    phone.text("HOLA")
    return phone.text("1")


@pytest.fixture()
def upala() -> Iterator[int]:
    """Upala's id; its name set back after the test."""
    with db.transaction() as session:
        place = session.scalar(select(Municipality).where(Municipality.code == "cr-upala"))
        assert place is not None
        place_id, name = place.id, place.name
    yield place_id
    with db.transaction() as session:
        found = session.get(Municipality, place_id)
        assert found is not None
        found.name = name


def test_an_admin_edit_reaches_the_next_message_of_every_process(
    app: Flask, client: Any, prepared: dict[str, Any], accounts: dict[str, str], upala: int
) -> None:
    from app import create_app

    other = create_app(prepared)  # another web process: a cache of its own
    here, there = TwilioPhone(client, "+50688007010"), TwilioPhone(other.test_client())
    assert "Upala Norte" not in municipality_menu(here)
    assert "Upala Norte" not in municipality_menu(there)
    assert login(client, accounts["directory_editor"]).status_code == 302
    url = f"/admin/directory/municipalities/{upala}"
    token = csrf_token(client.get(url).get_data(as_text=True))
    saved = client.post(url, data={"csrf_token": token, "name": "Upala Norte"})
    assert saved.status_code == 302
    assert "Upala Norte" in municipality_menu(here)
    assert "Upala Norte" in municipality_menu(there)


def test_a_flow_published_from_the_command_line_reaches_the_next_message(
    app: Flask, phone: TwilioPhone, monkeypatch: Any, tmp_path: Path
) -> None:
    assert "Buscar servicios" in phone.text("HOLA")  # the flows are cached
    folder = tmp_path / "definitions"
    shutil.copytree(DEFINITIONS_DIR, folder)
    main_flow = folder / "main.yaml"
    main_flow.write_text(
        main_flow.read_text(encoding="utf-8").replace("Buscar servicios", "Buscar lugares"),
        encoding="utf-8",
    )
    for name in ("RUTA_SECRET_KEY", "RUTA_DATA_KEY", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.setenv(name, app.config[name])
    try:
        published = CliRunner().invoke(
            main, ["flows", "publish", "--dir", str(folder), "--by", "lean-test"]
        )
        assert published.exit_code == 0, published.output
        assert "published main" in published.output
        assert "Buscar lugares" in phone.text("HOLA")
    finally:
        with db.transaction() as session:
            session.execute(delete(FlowVersion).where(FlowVersion.published_by == "lean-test"))
    assert "Buscar servicios" in phone.text("HOLA")


def test_every_table_the_caches_hold_bumps_their_counter(app: Flask) -> None:
    """Triggers (migration 0011), so no writer can forget: raw SQL, an import, the admin."""

    def version(name: str) -> int:
        with db.transaction() as session:
            found = session.scalar(select(CacheVersion.version).where(CacheVersion.name == name))
            assert found is not None
            return found

    for table in CACHED_TABLES:
        before = version("directory")
        with db.transaction() as session:  # a write that changes nothing is a write still
            touch = f"UPDATE {table} SET id = id WHERE id = (SELECT min(id) FROM {table})"  # noqa: S608
            session.execute(text(touch))
        assert version("directory") > before, table
    before = version("flows")
    with db.transaction() as session:
        session.execute(text("UPDATE flow_versions SET note = note WHERE id = 1"))
    assert version("flows") > before
    flows_now = version("flows")
    with db.transaction() as session:
        session.execute(text("UPDATE contacts SET language = language"))
    assert version("flows") == flows_now  # other tables bump nothing


# --- what is stored ---------------------------------------------------------------------------


def test_what_the_lean_path_stores_the_orm_reads_and_the_database_sees_encrypted(
    phone: TwilioPhone, client: Any
) -> None:
    phone.text("HOLA")
    reply = phone.text("1")
    handset = AtHandset(client, "+50688007020")
    screen = handset.dial()
    with db.transaction() as session:
        contact = session.scalar(
            select(Contact).where(
                Contact.phone_hash.in_(crypto.current().lookup_hashes(phone.number))
            )
        )
        assert contact is not None and contact.phone == phone.number
        assert contact.language == "es" and contact.last_seen_at.tzinfo is not None
        messages = session.scalars(
            select(Message).where(Message.contact_id == contact.id).order_by(Message.id)
        ).all()
        assert [(m.direction, m.body, m.status) for m in messages] == [
            ("in", "HOLA", "received"),
            ("out", messages[1].body, "replied"),
            ("in", "1", "received"),
            ("out", reply, "replied"),
        ]
        assert messages[3].in_reply_to_id == messages[2].id
        assert messages[3].segments == 1 and messages[3].encoding == "GSM-7"
        assert all(m.created_at.tzinfo is not None for m in messages)
        state = session.scalar(
            select(ConversationSession.state).where(ConversationSession.contact_id == contact.id)
        )
        assert state is not None and json.loads(state)["pins"]["main"] == 1
        ussd = session.scalar(
            select(UssdSession).where(UssdSession.session_id == handset.session_id)
        )
        assert ussd is not None and ussd.last_screen == screen and ussd.last_input == ""
        raw = (
            session.execute(
                text("SELECT body FROM messages WHERE contact_id = :c"), {"c": contact.id}
            )
            .scalars()
            .all()
        )
        raw_state = session.execute(
            text("SELECT state FROM conversation_sessions WHERE contact_id = :c"),
            {"c": contact.id},
        ).scalar()
    assert all(body.startswith(crypto.PREFIX) for body in raw)  # sealed values
    assert "HOLA" not in "".join(raw) and raw_state is not None and "main" not in raw_state


# --- the edge ---------------------------------------------------------------------------------


def test_webhooks_run_without_the_admin_session_csrf_or_user_loading(
    app: Flask, client: Any, accounts: dict[str, str], monkeypatch: Any
) -> None:
    from admin import auth

    browser = Browser(app)  # a request context each, as under a server
    assert login(browser, accounts["admin"]).status_code == 302  # it holds a session cookie
    loaded: list[str] = []
    real = auth.login_manager._user_callback
    monkeypatch.setattr(
        auth.login_manager, "_user_callback", lambda uid: loaded.append(uid) or real(uid)
    )
    phone = TwilioPhone(browser)
    response = phone.post(phone.params("HOLA"))
    assert response.status_code == 200 and b"Buscar servicios" in response.data
    assert "Set-Cookie" not in response.headers and "Vary" not in response.headers
    assert loaded == []
    assert browser.get("/admin/").status_code == 200 and loaded  # the admin still loads users


def test_the_twilio_signature_is_computed_once_and_either_port_form_verifies(
    phone: TwilioPhone, monkeypatch: Any
) -> None:
    from gateway import twilio_sms

    computed: list[str] = []
    real = twilio_sms._signature
    monkeypatch.setattr(
        twilio_sms, "_signature", lambda t, u, s: computed.append(u) or real(t, u, s)
    )
    assert phone.post(phone.params("HOLA")).status_code == 200
    assert computed == [f"{PUBLIC_BASE_URL}/webhooks/twilio/sms"]
    computed.clear()
    params = phone.params("HOLA")
    with_port = sign(f"{PUBLIC_BASE_URL}:443/webhooks/twilio/sms", params)
    assert phone.post(params, signature=with_port).status_code == 200  # Twilio signs either
    assert len(computed) == 2
    assert phone.post(phone.params("HOLA"), signature="x" * 28).status_code == 403


def test_a_web_process_writes_its_figures_within_a_second_without_a_scrape(
    app: Flask, phone: TwilioPhone
) -> None:
    redis = app.extensions["ruta.redis"]
    key = metrics.hash_key(app.config["RUTA_QUEUE_PREFIX"])
    field = "ruta_inbound_messages|twilio|handled"
    metrics.flush()  # what earlier tests left in this process
    before = int(redis.hget(key, field) or 0)
    phone.text("HOLA")
    phone.text("1")
    deadline = time.monotonic() + 3 * metrics.FLUSH_SECONDS
    while int(redis.hget(key, field) or 0) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert int(redis.hget(key, field) or 0) == before + 2


def test_deadlines_share_one_watchdog_thread_and_still_expire() -> None:
    from sqlalchemy.exc import OperationalError

    from ruta.db import DeadlineExceeded, deadline, past_deadline

    with deadline(5):
        pass
    threads = threading.active_count()
    for _ in range(200):
        with deadline(5):
            assert not past_deadline()
    assert threading.active_count() == threads  # no thread per block
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded), deadline(0.2):
        while not past_deadline():
            time.sleep(0.01)
        raise OperationalError("SELECT 1", None, Exception("cut"))
    assert time.monotonic() - started < 2


# --- a dropped connection ---------------------------------------------------------------------


def test_a_connection_the_database_dropped_is_retried_once(
    phone: TwilioPhone, prepared: dict[str, Any]
) -> None:
    if not postgresql():
        pytest.skip("a dropped server connection is PostgreSQL's")
    phone.text("HOLA")  # a pooled connection, used
    assert db.engine is not None
    outside = create_engine(db.engine.url, poolclass=NullPool)  # not one of the pool's
    with outside.connect() as connection:  # a restart, as the pool sees it: all gone
        pids = (
            connection.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                )
            )
            .scalars()
            .all()
        )
        for pid in pids:
            connection.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        connection.commit()
    outside.dispose()
    assert pids
    reply = phone.text("1")  # the first try fails on a dead connection, the second answers
    assert "municipio" in reply
    redis = phone.client.application.extensions["ruta.redis"]
    assert spool.waiting(redis, prepared["RUTA_QUEUE_PREFIX"]) == 0  # answered, not kept


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(state=st.dictionaries(st.text(max_size=8), _JSON, max_size=6))
@settings(max_examples=300)
def test_a_state_is_read_back_as_written_and_as_the_standard_library_wrote_it(
    state: dict[str, Any],
) -> None:
    """The state is JSON written by orjson (ruta/conversation.py); states written before, by
    the standard library (ASCII escapes, spaces), read the same."""
    from ruta.conversation import dump_state, load_state

    assert load_state(dump_state(state)) == state
    assert json.loads(dump_state(state)) == state
    assert load_state(json.dumps(state)) == state


def test_a_conversation_stored_by_the_standard_library_goes_on(
    app: Flask, phone: TwilioPhone
) -> None:
    assert "Buscar servicios" in phone.text("HOLA")
    with Session(db.bound()) as session:
        stored = session.scalars(select(ConversationSession)).one()
        stored.state = json.dumps(json.loads(stored.state))  # as written before orjson
        session.commit()
    assert "Upala" in phone.text("1")
