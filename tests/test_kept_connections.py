"""The connection a transaction committed on is kept for the process's next transaction
(ruta/sql.py, ``_Kept``): reused at once, never more of them than leave one in the pool,
given back when anything fails, closed with the engine, never used by a forked child."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, Integer, bindparam, literal_column, select, text
from sqlalchemy.exc import DBAPIError

from ruta import sql
from ruta.db import _watched, db, deadline
from tests.engines import own_engine

BACKEND = sql.Prepared(select(literal_column("pg_backend_pid()", Integer)))
FAILS = sql.Prepared(select(literal_column("1") / bindparam("zero", type_=Integer)))


@pytest.fixture()
def engine(app: Flask) -> Iterator[Engine]:
    """An engine of three pooled connections and no overflow."""
    with own_engine("SQLite's transactions are SQLAlchemy's own", pool_size=3, max_overflow=0) as e:
        yield e


def backend(engine: Engine) -> int:
    """The server process of the connection one transaction ran on."""
    with sql.transaction(engine) as tx:
        ((pid,),) = tx.run(BACKEND(), commit=True)[0]
    return int(pid)


def at_once(engine: Engine, count: int) -> set[int]:
    """``count`` transactions open at the same time, on as many connections."""
    pids: list[int] = []
    together = threading.Barrier(count, timeout=10)

    def one() -> None:
        with sql.transaction(engine) as tx:
            ((pid,),) = tx.run(BACKEND())[0]
            pids.append(int(pid))
            together.wait()

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(pids) == count
    return set(pids)


def alive(engine: Engine, pid: int) -> bool:
    with engine.connect() as connection:
        return bool(
            connection.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ).scalar()
        )


def test_the_next_transaction_runs_on_the_connection_the_last_one_committed_on(
    engine: Engine,
) -> None:
    first = backend(engine)
    assert engine.pool.checkedin() == 0  # type: ignore[attr-defined]
    assert backend(engine) == first
    assert backend(engine) == first


def test_an_engine_that_pings_its_connections_keeps_none(app: Flask) -> None:
    """The workers' engines ping a connection before each use: the pool hands them out."""
    with own_engine("SQLite's transactions are SQLAlchemy's own", pool_size=3, pre_ping=True) as e:
        backend(e)
        assert e.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_one_connection_always_stays_in_the_pool_for_the_rest_of_the_process(
    engine: Engine,
) -> None:
    assert len(at_once(engine, 3)) == 3  # the whole pool, each kept as it was committed on
    pool: Any = engine.pool
    assert pool.checkedin() == 1 and pool.checkedout() == 2
    started = time.monotonic()
    with engine.connect() as connection:  # the admin's ORM, say: no wait for the pool
        assert connection.execute(text("SELECT 1")).scalar() == 1
    assert time.monotonic() - started < 1
    assert len({backend(engine) for _ in range(4)}) == 1


def test_a_failed_transaction_gives_every_kept_connection_back_to_the_pool(
    engine: Engine,
) -> None:
    at_once(engine, 3)
    pool: Any = engine.pool
    assert pool.checkedout() == 2
    with pytest.raises(DBAPIError, match="division by zero"), sql.transaction(engine) as tx:
        tx.run(FAILS(zero=0))
    assert pool.checkedout() == 0 and pool.checkedin() == 3
    backend(engine)  # and keeping starts again
    assert pool.checkedout() == 1


def test_disposing_of_the_engine_closes_the_kept_connections(engine: Engine) -> None:
    pid = backend(engine)
    with own_engine("SQLite's transactions are SQLAlchemy's own", pool_size=1) as watcher:
        assert alive(watcher, pid)
        engine.dispose()
        deadline_at = time.monotonic() + 5
        while alive(watcher, pid) and time.monotonic() < deadline_at:
            time.sleep(0.05)
        assert not alive(watcher, pid)
    assert backend(engine) != pid


def test_a_kept_connection_is_watched_by_the_deadline_of_the_transaction_it_serves(
    engine: Engine,
) -> None:
    backend(engine)
    with deadline(5), sql.transaction(engine) as tx:
        tx.run(BACKEND())
        assert tx._raw in _watched.watch.connections


def test_a_forked_child_leaves_its_parents_kept_connection_alone(engine: Engine) -> None:
    parent = backend(engine)
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's outcome is read through the pipe
        status = 1
        try:
            engine.dispose(close=False)  # SQLAlchemy's advice for a child: the pool's are not its
            os.write(writing, str(backend(engine)).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(writing)
    with os.fdopen(reading) as answer:
        child_backend = int(answer.read() or 0)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_backend not in (0, parent)
    assert backend(engine) == parent  # and the parent's still answers it


def test_the_pool_is_as_large_as_the_setting_and_holds_every_web_thread_and_the_admin(
    app: Flask,
) -> None:
    import shlex
    from pathlib import Path

    from ruta.config import ConfigError, from_environment

    assert from_environment({})["RUTA_DB_POOL_SIZE"] == 8
    assert from_environment({"RUTA_DB_POOL_SIZE": "12"})["RUTA_DB_POOL_SIZE"] == 12
    with pytest.raises(ConfigError, match="RUTA_DB_POOL_SIZE"):
        from_environment({"RUTA_DB_POOL_SIZE": "many"})
    procfile = (Path(__file__).parent.parent / "Procfile").read_text(encoding="utf-8")
    web = shlex.split(next(line for line in procfile.splitlines() if line.startswith("web:")))
    threads = int(web[web.index("--threads") + 1])
    assert threads + 1 <= from_environment({})["RUTA_DB_POOL_SIZE"]  # kept: one fewer
    assert db.engine is not None
    if db.engine.dialect.name == "postgresql":
        assert db.engine.pool.size() == app.config["RUTA_DB_POOL_SIZE"]  # type: ignore[attr-defined]
