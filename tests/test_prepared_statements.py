"""PostgreSQL: the webhooks' statements are prepared once per connection and run by EXECUTE
(ruta/sql.py), and a connection stays usable whatever happened to what it had prepared."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Engine,
    Integer,
    Text,
    bindparam,
    cast,
    literal_column,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError

from ruta import sql
from ruta.db import db
from tests.engines import own_engine

ONE = sql.Prepared(select(literal_column("1") + bindparam("n", type_=Integer)))
FAILS = sql.Prepared(select(literal_column("1") / bindparam("zero", type_=Integer)))


@pytest.fixture()
def one_connection(app: Flask) -> Iterator[Engine]:
    """An engine of one pooled connection, so every transaction finds what the last left."""
    with own_engine("prepared statements are PostgreSQL's", pool_size=1, max_overflow=0) as e:
        yield e


def prepared_names(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(
            connection.execute(
                text("SELECT name FROM pg_prepared_statements WHERE name LIKE 'ruta\\_%'")
            ).scalars()
        )


def run(engine: Engine, *calls: sql.Call) -> list[list[sql.Row]]:
    with sql.transaction(engine) as tx:
        return tx.run(*calls, commit=True)


def sent(engine: Engine, monkeypatch: pytest.MonkeyPatch, *calls: sql.Call) -> list[str]:
    """What ``calls`` send, statement by statement (ruta/sql.py sends through ``_send``)."""
    queries: list[str] = []
    original = sql._send

    def send(raw: Any, query: str, encoding: str) -> list[Any]:
        queries.extend(query.split(";\n"))
        return original(raw, query, encoding)

    with monkeypatch.context() as patch:
        patch.setattr(sql, "_send", send)
        run(engine, *calls)
    return queries


def test_a_statement_is_prepared_once_then_executed(
    one_connection: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = ONE.form(one_connection.dialect).name
    first = sent(one_connection, monkeypatch, ONE(n=1))
    assert first[0].startswith(f"PREPARE {name} AS SELECT")
    assert first[1:] == ["BEGIN", f"EXECUTE {name}(1)", "COMMIT"]
    assert sent(one_connection, monkeypatch, ONE(n=2)) == ["BEGIN", f"EXECUTE {name}(2)", "COMMIT"]
    assert run(one_connection, ONE(n=41)) == [[(42,)]]
    assert name in prepared_names(one_connection)


def test_a_batch_that_fails_after_preparing_leaves_the_connection_usable(
    one_connection: Engine,
) -> None:
    fresh = sql.Prepared(select(literal_column("2") + bindparam("n", type_=Integer)))
    with pytest.raises(DBAPIError, match="division by zero"):
        run(one_connection, fresh(n=1), FAILS(zero=0))  # both prepared, then the failure
    # Both PREPAREs outlived the rollback: preparing again would fail ("already exists").
    assert run(one_connection, fresh(n=1), ONE(n=1)) == [[(3,)], [(2,)]]


def test_statements_deallocated_behind_its_back_fail_once_then_are_prepared_again(
    one_connection: Engine,
) -> None:
    assert run(one_connection, ONE(n=1)) == [[(2,)]]
    with one_connection.connect() as connection:  # the pool's one connection
        connection.exec_driver_sql("DEALLOCATE ALL")
        connection.commit()
    with pytest.raises(DBAPIError, match="does not exist"):
        run(one_connection, ONE(n=1))
    with one_connection.connect() as connection:
        raw = connection.connection.driver_connection
    notices: list[str] = []
    raw.add_notice_handler(lambda diagnostic: notices.append(diagnostic.message_primary))
    # The next batch asks the server which statements it holds, through the driver, before its
    # own BEGIN: that BEGIN must not land inside a transaction the driver opened.
    assert run(one_connection, ONE(n=1)) == [[(2,)]]
    assert notices == []
    assert raw.info.transaction_status.name == "IDLE"


def test_with_prepare_off_the_statements_themselves_are_sent(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    with own_engine(
        "prepared statements are PostgreSQL's", pool_size=1, max_overflow=0, prepare=False
    ) as engine:
        queries = sent(engine, monkeypatch, ONE(n=1))
        assert queries[0] == "BEGIN" and queries[-1] == "COMMIT"
        assert queries[1].startswith("SELECT") and "EXECUTE" not in queries[1]
        assert run(engine, ONE(n=1)) == [[(2,)]]
        assert prepared_names(engine) == set()


def test_the_setting_reaches_the_engine(prepared: dict[str, Any]) -> None:
    from ruta.config import from_environment

    assert from_environment({"RUTA_DB_PREPARE": "0"})["RUTA_DB_PREPARE"] is False
    assert from_environment({})["RUTA_DB_PREPARE"] is True


def test_the_orms_rollbacks_leave_the_statements_prepared(one_connection: Engine) -> None:
    """psycopg prepares a statement it has seen five times and, when it holds any, answers a
    ROLLBACK with DEALLOCATE ALL, which took Ruta's statements too: the next message failed."""
    assert run(one_connection, ONE(n=1)) == [[(2,)]]
    for _ in range(3):
        with one_connection.connect() as connection:  # the admin's ORM, say
            for _ in range(6):
                connection.execute(select(literal_column("1") + bindparam("n", 1, Integer)))
            connection.rollback()
        assert run(one_connection, ONE(n=1)) == [[(2,)]]
    assert ONE.form(one_connection.dialect).name in prepared_names(one_connection)


def deallocate_everywhere() -> int:
    """DEALLOCATE ALL on every connection of the app's pool, as a DBA's script might."""
    assert db.engine is not None
    sql.return_kept(db.engine)  # the connections the webhooks keep between messages too
    idle = db.engine.pool.checkedin()  # type: ignore[attr-defined]
    connections = [db.engine.connect() for _ in range(idle)]
    for connection in connections:
        connection.exec_driver_sql("DEALLOCATE ALL")
        connection.commit()
    for connection in connections:
        connection.close()
    return idle


def test_a_message_whose_statements_were_deallocated_is_answered(client: Any, phone: Any) -> None:
    from tests.gateway.test_ussd import AtHandset

    assert db.engine is not None
    if db.engine.dialect.name != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    assert "Buscar servicios" in phone.text("HOLA")
    handset = AtHandset(client, "+50688007201")
    assert handset.dial()
    assert deallocate_everywhere() >= 1
    assert "municipio" in phone.text("1")  # not a 503: tried once more, prepared again
    assert deallocate_everywhere() >= 1
    kind, screen = handset.press("1")
    assert kind == "CON" and screen


# --- the arguments, rendered as SQL literals by ruta/sql.py ----------------------------------

#: Typed as a column gives its parameter a type (cast: a bare ``SELECT $1`` would be text).
ECHO = sql.Prepared(
    select(
        cast(bindparam("text"), Text),
        cast(bindparam("number"), BigInteger),
        cast(bindparam("flag"), Boolean),
        cast(bindparam("when"), DateTime(timezone=True)),
    )
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")),
    number=st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    flag=st.one_of(st.none(), st.booleans()),
    when=st.one_of(
        st.none(),
        st.datetimes(
            min_value=datetime(1900, 1, 1),
            max_value=datetime(2200, 1, 1),
            timezones=st.sampled_from([UTC, timezone(timedelta(hours=-6))]),
        ),
    ),
)
def test_every_argument_reaches_the_database_as_it_was(
    one_connection: Engine, text: str, number: int | None, flag: bool | None, when: datetime | None
) -> None:
    """Quotes, backslashes, any character but NUL (and lone surrogates, which are not text
    UTF-8 can carry), big integers, NULLs and times come back unchanged: what the literals say
    is what was bound."""
    sent = {"text": text, "number": number, "flag": flag, "when": when}
    assert run(one_connection, ECHO(**sent)) == [[(text, number, flag, when)]]


def test_text_with_a_nul_is_refused_as_before(one_connection: Engine) -> None:
    with pytest.raises(DBAPIError, match="NUL"):
        run(one_connection, ECHO(text="a\x00b", number=1, flag=True, when=None))
    assert run(one_connection, ONE(n=1)) == [[(2,)]]


def test_without_standard_conforming_strings_psycopg_renders_the_arguments(
    one_connection: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``standard_conforming_strings`` off a backslash in a plain literal is an escape:
    the values go through psycopg's adapters, which know it, and still arrive unchanged."""
    tricky = "C:\\\\temp\\\\n 'quoted' \\\\"
    with one_connection.connect() as connection:
        connection.exec_driver_sql("SET standard_conforming_strings = off")
        connection.commit()
    try:
        statements = sent(
            one_connection, monkeypatch, ECHO(text=tricky, number=None, flag=None, when=None)
        )
        assert run(one_connection, ECHO(text=tricky, number=None, flag=None, when=None)) == [
            [(tricky, None, None, None)]
        ]
        assert any(" E'" in statement for statement in statements), statements
    finally:
        with one_connection.connect() as connection:
            connection.exec_driver_sql("SET standard_conforming_strings = on")
            connection.commit()


class _Interrupted(Exception):
    pass


def test_an_error_between_batches_rolls_back_and_returns_the_connection_as_it_came(
    one_connection: Engine,
) -> None:
    """The webhook's transaction uses the pool's connection without SQLAlchemy's Connection:
    an exception raised between two batches (the engine's, say) still rolls the server's
    transaction back, and the connection goes back to the pool out of autocommit mode, where
    the admin's ORM expects it."""
    with one_connection.begin() as connection:
        connection.execute(text("CREATE TEMPORARY TABLE IF NOT EXISTS interrupted (n int)"))
    insert = sql.Prepared(text("INSERT INTO interrupted (n) VALUES (:n)").bindparams(n=0))
    with pytest.raises(_Interrupted), sql.transaction(one_connection) as tx:
        tx.run(insert(n=1))
        assert tx._connection is None  # nothing made SQLAlchemy's Connection
        raise _Interrupted
    with one_connection.connect() as connection:
        raw = connection.connection.driver_connection
        assert raw.autocommit is False
        assert connection.execute(text("SELECT count(*) FROM interrupted")).scalar() == 0
    assert run(one_connection, insert(n=2)) == [[]]
    with one_connection.connect() as connection:
        assert connection.execute(text("SELECT n FROM interrupted")).scalars().all() == [2]


def test_a_committed_transaction_returns_the_connection_idle_and_out_of_autocommit(
    one_connection: Engine,
) -> None:
    assert run(one_connection, ONE(n=1)) == [[(2,)]]
    with one_connection.connect() as connection:
        raw = connection.connection.driver_connection
        assert raw.autocommit is False
        assert raw.info.transaction_status.name == "IDLE"
