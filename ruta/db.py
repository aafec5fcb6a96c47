"""The database: one engine and session factory per process, bound by the app factory."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

#: Seconds a database call may take by default: web requests must answer well within Twilio's
#: 15 s; workers (``ruta worker`` passes its own) may wait longer.
WEB_TIMEOUT = 4.0


class DeadlineExceeded(OperationalError):
    """The database did not answer within the deadline; the connection was cut."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no answer within {seconds:g} s", None, Exception("deadline"))


#: What "the database is unreachable, hung or locked" looks like to a caller, as opposed to a
#: bug: the web then keeps the message outside the database (ruta/spool.py).
UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)


def make_engine(
    url: str,
    *,
    timeout: float = WEB_TIMEOUT,
    pre_ping: bool = False,
    prepare: bool = True,
    pool_size: int | None = None,
    **kwargs: Any,
) -> Engine:
    """An engine whose every wait is bounded by ``timeout``. ``pre_ping`` (workers) checks each
    pooled connection before use; the web does not pay that round trip: a connection found
    dropped fails its first statement, the pool drops every connection as old as it, and the
    inbound path tries once more (``ruta.conversation.handle_inbound``). ``prepare``: whether
    ruta/sql.py's transactions prepare their statements on the server (RUTA_DB_PREPARE);
    ``pool_size``: the PostgreSQL pool's (RUTA_DB_POOL_SIZE; SQLite keeps SQLAlchemy's)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        # Heroku-style URLs name no driver; psycopg 3 is the one we ship.
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    millis = int(timeout * 1000)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": timeout, "check_same_thread": False})
    else:
        # Bounded on both sides: libpq gives up connecting (at least 2 s, its minimum) and the
        # server gives up statements and lock waits; the deadline below covers a connection
        # that stops answering altogether.
        # connect_args replace the URL's own ``options`` (a search_path, say): keep both.
        options = make_url(url).query.get("options") or ""
        if not isinstance(options, str):
            options = " ".join(options)
        kwargs.setdefault(
            "connect_args",
            {
                "connect_timeout": max(2, int(timeout * 0.75)),
                "options": f"{options} -c statement_timeout={millis} -c lock_timeout={millis}",
            },
        )
        kwargs.setdefault("pool_pre_ping", pre_ping)
        kwargs.setdefault("pool_timeout", timeout)
        if pool_size is not None:
            kwargs.setdefault("pool_size", pool_size)
    engine = create_engine(url, **kwargs)
    engine.update_execution_options(ruta_prepare=prepare)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", partial(_sqlite_pragmas, millis=millis))
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    elif prepare:
        event.listen(engine, "connect", _no_driver_prepares)
    event.listen(engine, "checkout", _watch_checkout)
    return engine


def _no_driver_prepares(dbapi_connection: Any, _record: Any) -> None:
    # psycopg prepares a statement it has seen five times and, holding any, answers every
    # ROLLBACK (the pool's reset included) with DEALLOCATE ALL, which would take ruta/sql.py's
    # prepared statements with it.
    dbapi_connection.prepare_threshold = None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *, millis: int) -> None:
    # WAL lets the web process read while a worker writes; busy_timeout waits instead of failing,
    # up to the process's database timeout (a web request then keeps the message in the spool).
    # isolation_level=None hands transaction control to SQLAlchemy, whose "begin" hook below
    # takes the write lock at once: SQLite then serialises read-modify-write transactions the
    # way PostgreSQL's row locks do, and no two messages of one person interleave.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={millis}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# --- deadlines -------------------------------------------------------------------------------
#
# Statement and connect timeouts need a server that answers. A database behind a network that
# accepts bytes and never forwards them (a hung proxy, a half-open connection) blocks a socket
# read forever: within ``deadline``, a watchdog shuts down the socket of every connection the
# thread checked out, the blocked call fails at once, and the pool drops that connection.

_watched = threading.local()


class _Watch:
    """One ``deadline`` block: the connections it checked out, and whether it expired."""

    __slots__ = ("connections", "done", "expired")

    def __init__(self) -> None:
        self.connections: list[Any] = []
        self.expired = False
        self.done = False

    def expire(self) -> None:
        if self.done:  # ended while the watchdog took it off its queue
            return
        self.expired = True
        for connection in list(self.connections):
            _cut(connection)


class _Watchdog:
    """One daemon thread per process for every deadline (a timer thread per message cost more
    than the rest of the bookkeeping). Blocks that end are only marked done; the thread drops
    them when they reach the front of its queue, so it wakes about once per deadline length
    when every message answers in time."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._queue: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._pid: int | None = None

    def watch(self, seconds: float) -> _Watch:
        watch = _Watch()
        when = time.monotonic() + seconds
        with self._condition:
            if self._pid != os.getpid():  # first use, or a forked child: its own thread
                self._pid, self._queue = os.getpid(), []
                threading.Thread(target=self._run, name="ruta-deadlines", daemon=True).start()
            heapq.heappush(self._queue, (when, next(self._order), watch))
            if self._queue[0][2] is watch:
                self._condition.notify()
        return watch

    def _run(self) -> None:
        while True:
            with self._condition:
                queue = self._queue
                while queue and queue[0][2].done:
                    heapq.heappop(queue)
                if not queue:
                    self._condition.wait()
                    continue
                wait = queue[0][0] - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                _, _, watch = heapq.heappop(queue)
            watch.expire()


_watchdog = _Watchdog()


def _watch_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    watch = getattr(_watched, "watch", None)
    if watch is not None:
        watch.connections.append(dbapi_connection)


def _cut(connection: Any) -> None:
    pgconn = getattr(connection, "pgconn", None)  # psycopg 3; SQLite has no socket to cut
    if pgconn is None:
        return
    with contextlib.suppress(Exception):
        duplicate = os.dup(pgconn.socket)
        with socket.socket(fileno=duplicate) as sock:
            sock.shutdown(socket.SHUT_RDWR)


def past_deadline() -> bool:
    """Whether this thread's deadline (if any) has passed: then trying again is pointless."""
    watch = getattr(_watched, "watch", None)
    return bool(watch is not None and watch.expired)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Database work in this block gets ``seconds`` at most; past it, the connections it uses
    are cut and the block fails with ``DeadlineExceeded`` (an ``OperationalError``)."""
    outer = getattr(_watched, "watch", None)
    watch = _watched.watch = _watchdog.watch(seconds)
    try:
        yield
    except UNAVAILABLE as exc:
        if watch.expired:
            raise DeadlineExceeded(seconds) from exc
        raise
    finally:
        watch.done = True
        _watched.watch = outer
    if watch.expired:
        log.warning("database answered after its %.1f s deadline", seconds)


class Database:
    """Holds the engine and the session factory; created unbound, bound by ``init``."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.timeout = WEB_TIMEOUT
        self.pool_size: int | None = None
        self._factory: sessionmaker[Session] | None = None

    def init(
        self,
        url: str,
        *,
        timeout: float = WEB_TIMEOUT,
        pre_ping: bool = False,
        prepare: bool = True,
        pool_size: int | None = None,
    ) -> None:
        if (
            self.engine is not None
            and str(self.engine.url) == url
            and self.timeout == timeout
            and self.engine.get_execution_options().get("ruta_prepare") == prepare
            and self.pool_size == pool_size
        ):
            return
        if self.engine is not None:
            self.engine.dispose()
        self.timeout = timeout
        self.pool_size = pool_size
        self.engine = make_engine(
            url, timeout=timeout, pre_ping=pre_ping, prepare=prepare, pool_size=pool_size
        )
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    def bound(self) -> Engine:
        """The engine (for ruta/sql.py's transactions)."""
        if self.engine is None:
            raise RuntimeError("database not initialised: create the app first")
        return self.engine

    def session(self) -> Session:
        if self._factory is None:
            raise RuntimeError("database not initialised: create the app first")
        return self._factory()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any exception."""
        session = self.session()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


db = Database()
