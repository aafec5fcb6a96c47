"""Core statements compiled once, sent in as few round trips as the database allows.

The webhooks' path (``ruta/conversation.py``, ``ruta/ussd.py``) runs a handful of statements a
message. Through the ORM each cost a unit of work, an identity map and a statement compiled or
looked up in the cache on every call: most of a webhook's CPU. Here a statement is a SQLAlchemy
Core construct built once at import (``Prepared``), compiled once per dialect, and executed on
the pooled DBAPI connection with the same bind and result processing SQLAlchemy applies
(encrypted columns are encrypted and decrypted by their own type, so the admin's ORM reads
exactly what it would have written).

A ``Tx`` sends statements in batches. On PostgreSQL one batch is one network round trip: one
query string holding the ``BEGIN`` that opens the transaction, every statement of the batch,
and the ``COMMIT`` when the batch ends it (``Tx._batch``). A statement of a batch runs after the
previous one has finished (its locks taken), and under READ COMMITTED it sees what was committed
before it started: a read placed after a lock in the same batch sees the state left by whoever
held the lock. Each statement is prepared on the server once per connection and the batch
carries ``EXECUTE``s of it (``PREPARE`` first, in the same string, the first time). On SQLite
(in process) the statements run one after the other.

Rare paths (asking for help, subscribing, a focal point's command) still use the ORM:
``Tx.session()`` is a ``Session`` on the same connection and transaction, flushed before the
next batch.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NoReturn

from psycopg import ClientCursor, InterfaceError, errors, generators, pq
from psycopg.adapt import Transformer
from sqlalchemy import Connection, Engine, QueuePool, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement

Row = tuple[Any, ...]
Processor = Callable[[Any], Any]

#: psycopg's placeholders in SQLAlchemy's pyformat SQL, and its escaped percent sign.
_PLACEHOLDER = re.compile(r"%%|%\(([^)]+)\)s")
_NAMES = itertools.count(1)
#: In the pool's ``info`` of a PostgreSQL connection: the names prepared on it, and whether an
#: error has left that set in doubt (see ``Tx._prepared``).
_PREPARED = "ruta.prepared"
_IN_DOUBT = "ruta.prepared_in_doubt"
#: In the same ``info``: psycopg's loader of result rows for the connection, made once.
_LOADER = "ruta.loader"


class _Form:
    """A statement compiled for one dialect: its SQL, its parameters in order with their bind
    processors and defaults, and the result processor of each column it returns."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled: Any = statement.compile(dialect=dialect)  # a SQLCompiler
        self.sql = compiled.string
        binds = compiled.binds
        names = list(compiled.positiontup) if compiled.positional else list(binds)
        self.positional = compiled.positional
        # (name, the name in the SQL, default, bind processor, required)
        self.params: list[tuple[str, str, Any, Processor | None, bool]] = []
        escaped = compiled.escaped_bind_names or {}
        for name in names:
            bind = binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self.params.append(
                (bind.key, escaped.get(name, name), bind.value, processor, bool(bind.required))
            )
        columns = getattr(statement, "exported_columns", ())
        self.results: list[Processor | None] = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]
        self.returns_rows = bool(self.results)
        self.name = f"ruta_{next(_NAMES)}"
        self._rows = self._rows_function()
        self.prepare_sql = ""
        self.execute_sql = ""
        self._order: list[int] = []
        if dialect.name == "postgresql" and not self.positional:
            self._server_side()

    def _server_side(self) -> None:
        """The statement as ``PREPARE`` takes it (``$n`` parameters, types from its casts and
        columns) and the ``EXECUTE`` that runs it, its arguments bound as literals."""
        numbers: dict[str, int] = {}

        def number(match: re.Match[str]) -> str:
            name = match.group(1)
            if name is None:
                return "%"
            return f"${numbers.setdefault(name, len(numbers) + 1)}"

        body = _PLACEHOLDER.sub(number, self.sql)
        self.prepare_sql = f"PREPARE {self.name} AS {body}"
        position = {sql_name: index for index, (_, sql_name, *_) in enumerate(self.params)}
        self._order = [position[name] for name in numbers]
        arguments = ", ".join(["%s"] * len(numbers))
        self.execute_sql = (
            f"EXECUTE {self.name}({arguments})" if numbers else f"EXECUTE {self.name}"
        )
        self.render = self._renderer()

    def _renderer(self) -> Callable[[Mapping[str, Any]], tuple[str | None, list[Any]]]:
        """``render(values)``: the ``EXECUTE`` with its arguments as literals, or None and the
        arguments when one is of a type ``_literal`` does not render. Generated once per
        statement as straight-line code (the loop over the parameters unrolled, text quoted
        inline): a generic loop over ten parameters cost 10-15 us a statement, a webhook runs
        five."""
        scope: dict[str, Any] = {"_literal": _literal, "_missing": self._missing}
        lines = ["def render(values):"]
        for index, (name, _, default, processor, required) in enumerate(self.params):
            key = f"_k{index}"
            scope[key] = name
            if required:
                found = f"values[{key}] if {key} in values else _missing({key})"
                lines.append(f"    b{index} = {found}")
            else:
                scope[f"_d{index}"] = default
                lines.append(f"    b{index} = values.get({key}, _d{index})")
            if processor is not None:
                scope[f"_p{index}"] = processor
                lines.append(f"    b{index} = _p{index}(b{index})")
        arguments = [f"b{index}" for index in self._order]
        literals = [f"l{position}" for position in range(len(arguments))]
        for literal, argument in zip(literals, arguments, strict=True):
            # Text, the most frequent argument, quoted here; anything else by ``_literal``.
            quoted = f'"\'" + {argument}.replace("\'", "\'\'") + "\'"'
            lines.append(
                f"    {literal} = {quoted} if {argument}.__class__ is str"
                f" and '\\x00' not in {argument} else _literal({argument})"
            )
        scope["_plain"] = self.execute_sql
        if literals:
            unknown = " or ".join(f"{literal} is None" for literal in literals)
            lines.append(f"    if {unknown}:")
            lines.append(f"        return None, [{', '.join(arguments)}]")
            scope["_head"] = f"EXECUTE {self.name}("
            joined = " + ', ' + ".join(literals)
            lines.append(f"    return _head + {joined} + ')', []")
        else:
            lines.append("    return _plain, []")
        source = "\n".join(lines)
        exec(compile(source, f"<ruta.sql {self.name}>", "exec"), scope)  # noqa: S102
        return scope["render"]

    def _missing(self, name: str) -> NoReturn:
        raise KeyError(f"no value for parameter {name!r} of {self.sql[:60]!r}")

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        """The bound values in the order of the ``EXECUTE``'s arguments."""
        bound = self._bound(values)
        return [bound[index] for index in self._order]

    def _bound(self, values: Mapping[str, Any]) -> list[Any]:
        bound: list[Any] = []
        for name, _, default, processor, required in self.params:
            if name in values:
                value = values[name]
            elif required:
                self._missing(name)
            else:
                value = default
            bound.append(processor(value) if processor is not None else value)
        return bound

    def bind(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        bound = self._bound(values)
        if self.positional:
            return bound
        names = [sql_name for _, sql_name, *_ in self.params]
        return dict(zip(names, bound, strict=True))

    def rows(self, raw: Sequence[Row]) -> list[Row]:
        """The rows with each column's result processor applied (decrypted, timezone-aware)."""
        return self._rows(raw)

    def _rows_function(self) -> Callable[[Sequence[Row]], list[Row]]:
        """``rows`` as one comprehension generated for this statement's columns: a generic
        loop zipping processors with values cost more than the processing itself."""
        processors = self.results
        if not any(processors):
            return lambda raw: [tuple(row) for row in raw]
        scope: dict[str, Any] = {}
        columns = []
        for index, processor in enumerate(processors):
            if processor is None:
                columns.append(f"row[{index}]")
            else:
                scope[f"_p{index}"] = processor
                columns.append(f"_p{index}(row[{index}])")
        width = len(processors)
        source = (
            "def rows(raw):\n"
            f"    return [({', '.join(columns)},) for row in raw if len(row) == {width} or _bad()]"
        )
        scope["_bad"] = self._bad_width
        exec(compile(source, f"<ruta.sql rows {self.name}>", "exec"), scope)  # noqa: S102
        return scope["rows"]

    def _bad_width(self) -> bool:
        raise ValueError(f"a row of {self.sql[:60]!r} has not {len(self.results)} columns")


class Prepared:
    """A Core statement built once; compiled the first time it runs on each dialect. A
    function of the dialect's name builds it where dialects differ (``ON CONFLICT``)."""

    def __init__(self, statement: ClauseElement | Callable[[str], ClauseElement]) -> None:
        self.statement = statement
        self._forms: dict[str, _Form] = {}

    def form(self, dialect: Dialect) -> _Form:
        form = self._forms.get(dialect.name)
        if form is None:
            statement = self.statement
            if not isinstance(statement, ClauseElement):
                statement = statement(dialect.name)
            form = self._forms[dialect.name] = _Form(statement, dialect)
        return form

    def __call__(self, **values: Any) -> tuple[Prepared, dict[str, Any]]:
        """This statement with its parameters, for ``Tx.run``."""
        return self, values


Call = tuple[Prepared, Mapping[str, Any]]


class Tx:
    """One transaction on one pooled connection, its statements sent in batches (``run``).

    On PostgreSQL the transaction is opened by the first batch's ``BEGIN`` and closed by the
    last one's ``COMMIT``; the connection goes back to the pool as it came. The batches go to
    libpq under the driver, which sends no ``BEGIN`` of its own for them; it reads the
    server's transaction status, so an ORM statement (``session``) runs in the transaction a
    batch began, and the driver's commit or rollback ends it. The driver's settings are left
    as the pool keeps them (turning autocommit on and off around every message cost 2 % of a
    webhook's CPU). The pool's connection is used as it is: SQLAlchemy's ``Connection`` (made,
    begun, committed and closed around every message: 5-8 % of a webhook's CPU under load) is
    made only when something needs it (``connection``): the ORM's rare paths, and the handling
    of a driver's error.
    """

    def __init__(self, engine: Engine, pooled: Any, connection: Connection | None = None) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self._pooled = pooled  # the pool's proxy of the driver's connection
        self._connection = connection
        self.batched = self.dialect.name == "postgresql"
        self.begun = not self.batched
        self.committed = False
        self._session: Session | None = None
        raw: Any = pooled.driver_connection
        self._raw = raw
        # Kept by the pool with the driver's connection, forgotten with it.
        self._info = pooled.info
        self.prepare = engine.get_execution_options().get("ruta_prepare", True)
        self._client_cursor: Any = None

    @property
    def connection(self) -> Connection:
        """SQLAlchemy's ``Connection`` on this transaction's pooled connection, made when first
        asked for (it then owns the pooled connection: ``transaction`` closes it instead)."""
        if self._connection is None:
            self._connection = Connection(self.engine, connection=self._pooled)
            self._connection.begin()
        return self._connection

    def session(self) -> Session:
        """An ORM session in this transaction, for what the lean path does not cover."""
        if self._session is None:
            if not self.begun:
                self.run()  # the BEGIN its statements must run in
            self._session = Session(
                bind=self.connection,
                join_transaction_mode="rollback_only",
                expire_on_commit=False,
            )
        return self._session

    def run(self, *calls: Call, commit: bool = False) -> list[list[Row]]:
        """Execute ``calls`` in order, in one round trip on PostgreSQL, and return each one's
        rows (processed: decrypted, timezone-aware...). ``commit`` ends the transaction with
        the batch."""
        if self._session is not None:
            self._session.flush()
        forms = [(prepared.form(self.dialect), values) for prepared, values in calls]
        sql, params = "", None
        try:
            if self.batched:
                results = self._batch(forms, commit)
            else:
                results = []
                cursor = self._raw.cursor()
                try:
                    for form, values in forms:
                        sql, params = form.sql, form.bind(values)
                        cursor.execute(sql, params)
                        results.append(form.rows(cursor.fetchall()) if form.returns_rows else [])
                finally:
                    cursor.close()
        except self.dialect.loaded_dbapi.Error as exc:
            # What SQLAlchemy does with a driver's error (it is how this project's callers know
            # an unreachable database and a dropped connection, which it invalidates with
            # every pooled one as old): wrapped, with ``connection_invalidated`` when the
            # connection is gone.
            self.connection._handle_dbapi_exception(exc, sql, params, None, None)
            raise  # unreachable: the handler raises
        if commit:
            if not self.batched:
                self.connection.commit()
            self.committed = True
        return results

    def _batch(self, forms: list[tuple[_Form, Mapping[str, Any]]], commit: bool) -> Any:
        """One query string, sent with the simple query protocol, which runs several statements
        in order (each with its own snapshot under READ COMMITTED).

        Each statement is prepared once per connection and run by ``EXECUTE`` (the server
        parses and plans it once, not on every message: most of PostgreSQL's CPU for these
        small statements); a statement this connection has not prepared yet has its
        ``PREPARE`` at the head of the string. The arguments are bound on the client, as they
        must be in such a string: strings, numbers, times and NULLs as plain SQL literals
        (``_Form.render``), anything else by psycopg's ``ClientCursor`` adapters.
        With the engine's ``ruta_prepare`` option off (RUTA_DB_PREPARE=0: a PgBouncer in
        transaction mode may hand each transaction another server connection) the statements
        themselves are sent. ``_send`` sends the string and reads every result."""
        raw = self._raw
        mogrify = self._mogrify
        prepared = self._prepared() if self.prepare else None
        parts: list[str] = []
        fresh: list[str] = []
        if prepared is not None:
            for form, _ in forms:
                if form.prepare_sql and form.name not in prepared and form.name not in fresh:
                    parts.append(form.prepare_sql)
                    fresh.append(form.name)
        skip = len(parts)
        if not self.begun:
            parts.append("BEGIN")
            skip += 1
        plain = _plain_literals(raw)
        for form, values in forms:
            if prepared is not None and form.prepare_sql:
                if plain:
                    rendered, arguments = form.render(values)
                    parts.append(rendered or mogrify(form.execute_sql, arguments))
                else:
                    parts.append(mogrify(form.execute_sql, form.arguments(values)))
            else:
                parts.append(mogrify(form.sql, form.bind(values)))
        if commit:
            parts.append("COMMIT")
        if not parts:
            return []
        try:
            answers = _send(raw, ";\n".join(parts), "utf-8" if plain else raw.info.encoding)
        except BaseException:
            if prepared is not None:
                # Statements before the failure ran, prepares included (a PREPARE outlives a
                # rollback), and a statement may have failed for want of its own (someone
                # ran DEALLOCATE): the next batch on this connection asks the server.
                self._info[_IN_DOUBT] = True
            raise
        if prepared is not None:
            prepared.update(fresh)
        self.begun = True
        loader = self._info.get(_LOADER)
        if loader is None:
            loader = self._info[_LOADER] = Transformer(raw)
        results = []
        mine = answers[skip : skip + len(forms)]  # not the PREPAREs, BEGIN and COMMIT
        for (form, _), answer in zip(forms, mine, strict=True):
            if form.returns_rows:
                loader.set_pgresult(answer)
                results.append(form.rows(loader.load_rows(0, answer.ntuples, tuple)))
            else:
                results.append([])
        return results

    def _mogrify(self, sql: str, arguments: Any) -> str:
        """``sql`` with ``arguments`` bound by psycopg's adapters, for what ``_literal`` does not
        render (its cursor made the first time a transaction needs it, which most never do)."""
        if self._client_cursor is None:
            self._client_cursor = ClientCursor(self._raw)
        return str(self._client_cursor.mogrify(sql, arguments))

    def _prepared(self) -> set[str]:
        """The names of the statements prepared on this connection (none on a new one)."""
        prepared: set[str] | None = self._info.get(_PREPARED)
        if prepared is None:
            prepared = self._info[_PREPARED] = set()
        elif self._info.pop(_IN_DOUBT, False):
            listed = self._raw.execute(
                "SELECT name FROM pg_prepared_statements WHERE name LIKE 'ruta\\_%'"
            ).fetchall()
            if not self.begun:
                # The driver opened a transaction for it: ended at once, the connection is idle
                # for the batch's own BEGIN.
                self._raw.commit()
            prepared = self._info[_PREPARED] = {name for (name,) in listed}
        return prepared

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def _send(raw: Any, query: str, encoding: str) -> list[Any]:
    """Send one query string of several statements and wait for every result, as psycopg's
    cursor does but without the machinery a cursor keeps for a single statement (its
    preparing, its result sets: 59 against 36 us for five statements, measured alone); the
    first statement that failed
    raises the error psycopg would, and the ones after it did not run."""
    with raw.lock:
        raw.pgconn.send_query(query.encode(encoding))
        answers: list[Any] = raw.wait(generators.fetch_many(raw.pgconn))
    for answer in answers:
        status = answer.status
        if status == pq.ExecStatus.FATAL_ERROR:
            raise errors.error_from_result(answer, encoding=encoding)
        if status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
            raise InterfaceError(f"unexpected answer to a batch: {pq.ExecStatus(status).name}")
    return answers


def _plain_literals(raw: Any) -> bool:
    """Whether a quoted string means exactly its characters on this connection: with
    ``standard_conforming_strings`` on a backslash is an ordinary character and a quote is
    escaped by doubling it; in UTF-8 no byte of a multi-byte character is a quote. Both are
    PostgreSQL's defaults; the server reports them on the connection as they change."""
    info = raw.pgconn
    return (
        info.parameter_status(b"standard_conforming_strings") == b"on"
        and info.parameter_status(b"client_encoding") == b"UTF8"
    )


def _literal(value: Any) -> str | None:
    """``value`` as an ``EXECUTE`` argument, for the few types the webhooks bind (the server
    casts the literal to the prepared parameter's type); None for any other, and for text
    PostgreSQL cannot hold (a NUL), which psycopg's adapters then render or refuse."""
    kind = type(value)
    if kind is str:
        if "\x00" in value:
            return None
        return "'" + value.replace("'", "''") + "'"
    if value is None:
        return "NULL"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is datetime:
        return "'" + value.isoformat() + "'"
    return None


def statement_gone(exc: BaseException) -> bool:
    """The database no longer has a statement this connection prepared (someone ran
    DEALLOCATE or DISCARD on it): the failed batch has made the next one ask the server."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == "26000"


def try_again(exc: DBAPIError, attempt: int) -> bool:
    """Whether a transaction that failed with ``exc`` (nothing of it committed) may run once
    more: on its first attempt, within the request's deadline, when the failure was the
    connection's (dropped by a database restart: the pool has let go of it and of every one
    as old, so the second attempt connects afresh) or a prepared statement gone from under it
    (the second attempt prepares it again). Anything else propagates."""
    from ruta.db import past_deadline

    if attempt or past_deadline():
        return False
    return bool(exc.connection_invalidated) or statement_gone(exc)


def _checkout(engine: Engine) -> Any:
    """A connection from the pool, a driver's error wrapped as SQLAlchemy's ``Connection``
    wraps it (an unreachable database is an ``OperationalError`` to the callers)."""
    try:
        return engine.raw_connection()
    except engine.dialect.loaded_dbapi.Error as exc:
        Connection._handle_dbapi_exception_noconnection(exc, engine.dialect, engine)
        raise  # unreachable: the handler raises


class _Kept:
    """Connections a transaction committed on, kept out of the pool for the next transaction
    of this process, most recently used first (a stack: the same few stay warm).

    Checking a connection out of SQLAlchemy's pool and back in (its proxy, its records, its
    queue's locks, its events) cost 5-6 % of a webhook's CPU, more than any other part of a
    message's bookkeeping, for a connection every message of a web thread needs again at
    once. Kept here, they stay checked out as far as the pool knows: at most one fewer than
    the pool's size, so the admin's ORM in the same process always finds one in the pool, and
    never an overflow connection (which the pool closes when it comes back). Only what the
    pool would have handed out as it is goes on the stack: a connection idle after a commit,
    of a ``QueuePool`` that neither recycles connections by age nor pings them before use (the
    workers' engines do: they keep none). The pool's ``checkout`` event is fired again when
    one is taken (the deadlines' watch, ruta/db.py, listens).

    Whatever goes wrong in a transaction empties the stack back into the pool, which checks
    what it hands out next against its own invalidation (a database restart drops every
    connection as old as the one that failed); so does ``Engine.dispose``. A forked child
    starts with none (its parent's are its parent's to use).
    """

    def __init__(self, engine: Engine) -> None:
        pool = engine.pool
        limit = pool.size() - 1 if isinstance(pool, QueuePool) else 0
        if getattr(pool, "_recycle", -1) >= 0 or getattr(pool, "_pre_ping", False):
            limit = 0  # the pool checks its connections as it hands them out: let it
        self.limit = limit
        self.idle: deque[Any] = deque()
        self._pid = _process_id

    @classmethod
    def of(cls, engine: Engine) -> _Kept:
        kept: _Kept | None = engine.__dict__.get(_KEPT)
        if kept is None or kept._pid != _process_id:
            with _making:  # two threads' first transactions: one stack
                kept = engine.__dict__.get(_KEPT)
                if kept is None:
                    event.listen(engine, "engine_disposed", _close_kept)
                elif kept._pid == _process_id:
                    return kept  # another thread made it
                else:
                    _inherited.append(kept)  # never finalized: the sockets are the parent's
                kept = engine.__dict__[_KEPT] = cls(engine)
        return kept

    def take(self, engine: Engine) -> Any:
        try:
            pooled = self.idle.pop()
        except IndexError:
            return _checkout(engine)
        engine.pool.dispatch.checkout(pooled.dbapi_connection, pooled._connection_record, pooled)
        return pooled

    def keep(self, pooled: Any, raw: Any) -> bool:
        """Keep ``pooled`` if there is room and it is idle; False: the caller returns it."""
        if len(self.idle) >= self.limit or raw.pgconn.transaction_status != _IDLE:
            return False
        self.idle.append(pooled)
        return True

    def release(self, *, close: bool = False) -> None:
        """Every kept connection back to the pool, or closed (``close``: the pool is gone)."""
        while True:
            try:
                pooled = self.idle.pop()
            except IndexError:
                return
            if close:
                pooled.invalidate()
            else:
                pooled._close_special(transaction_reset=True)


_KEPT = "_ruta_kept"
_IDLE = pq.TransactionStatus.IDLE
#: Stacks a forked child inherited: referenced for ever, so that no proxy of its parent's
#: connections is ever finalized (which would send a ROLLBACK on the parent's socket).
_inherited: list[_Kept] = []
_process_id = os.getpid()
_making = threading.Lock()


def _forked() -> None:
    global _process_id
    _process_id = os.getpid()


os.register_at_fork(after_in_child=_forked)


def return_kept(engine: Engine) -> None:
    """Every connection this process keeps for ``engine``'s transactions back to its pool (for
    what works on the pool's idle connections)."""
    _Kept.of(engine).release()


def _close_kept(engine: Engine) -> None:
    """``Engine.dispose``: its pool has closed what it held; the kept ones are closed too."""
    kept: _Kept | None = engine.__dict__.get(_KEPT)
    if kept is not None and kept._pid == _process_id:
        kept.release(close=True)


@contextmanager
def transaction(engine: Engine) -> Iterator[Tx]:
    """A ``Tx``: committed by its last ``run(..., commit=True)`` or at the end of the block,
    rolled back on any exception."""
    if engine.dialect.name != "postgresql":
        # SQLite's transaction is SQLAlchemy's (its "begin" event takes the write lock).
        with engine.connect() as connection:
            connection.begin()
            tx = Tx(engine, connection.connection, connection)
            try:
                yield tx
                if tx._session is not None:
                    tx._session.flush()
                tx.close()
                connection.commit()
            except BaseException:
                tx.close()
                connection.rollback()
                raise
        return
    kept = _Kept.of(engine)
    pooled = kept.take(engine)
    tx = Tx(engine, pooled)
    done = False
    try:
        yield tx
        if tx._session is not None:
            tx._session.flush()
        tx.close()
        if tx.begun and not tx.committed:
            tx.run(commit=True)
        done = True
    except BaseException:
        kept.release()
        tx.close()
        if tx._connection is not None:
            tx._connection.rollback()
        elif tx.begun and pooled.is_valid:
            try:
                tx._raw.rollback()  # sends ROLLBACK: the server's transaction is ours
            except Exception as exc:  # a connection cut by a deadline, say: not reused
                pooled.invalidate(exc)
        raise
    finally:
        if tx._connection is not None:
            if done:
                tx._connection.commit()  # the driver is idle: this sends nothing
            tx._connection.close()
        elif done:
            if not kept.keep(pooled, tx._raw):
                # Committed and idle: back to the pool without its reset (a call into the
                # driver for a ROLLBACK it would not send), as SQLAlchemy's Connection does.
                pooled._close_special(transaction_reset=True)
        else:
            pooled.close()  # the pool's reset rolls back what is left, or drops it
