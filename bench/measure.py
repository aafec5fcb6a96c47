"""What the benchmarks measure beside throughput and latency: CPU from /proc and round trips.

- CPU seconds of a process and its descendants (``/proc/<pid>/stat``: utime + stime, plus the
  reaped children's), of the PostgreSQL backends serving one database (their pids from
  ``pg_stat_activity``), and of the whole machine (``/proc/stat``), so a figure says how much
  of the machine went to other people's work.
- Database round trips, counted in the served processes by a hook in psycopg: ``hook/`` holds a
  ``sitecustomize`` that installs ``install()`` in every Python process started with
  ``hook/`` on ``PYTHONPATH`` and ``RUTA_BENCH_ROUNDTRIPS=<folder>`` (the benchmark sets both
  for gunicorn and ``ruta worker`` only). Each process writes its running count into a file of
  8 bytes, ``<folder>/<pid>``, through a shared memory map; ``read_round_trips`` sums them.

A round trip is one exchange with the server (``count_round_trips``): outside a pipeline, one
statement sent through a cursor (an ``executemany`` counts once, a pool pre-ping too), the
``BEGIN`` psycopg sends before the first statement of a transaction, and the ``COMMIT`` or
``ROLLBACK`` that ends one; in psycopg's pipeline mode, the sync that sends every queued
statement (with its ``BEGIN`` and ``COMMIT``) and reads their results. The web engine does not
pre-ping; the workers' do.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV = "RUTA_BENCH_ROUNDTRIPS"
HOOK_DIR = Path(__file__).resolve().parent / "hook"
TICK = os.sysconf("SC_CLK_TCK")


# --- /proc ----------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from 3 (state) on


def descendants_of(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                parents[int(entry.name)] = int(fields[1])
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def own_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (not its children); 0 if it is gone."""
    fields = _stat(pid)
    return sum(int(v) for v in fields[11:13]) / TICK if fields is not None else 0.0


def cpu_seconds(pid: int, *, with_children: bool = True) -> float:
    """User + system CPU of a process, plus its reaped children and live descendants."""
    pids = [pid, *descendants_of(pid)] if with_children else [pid]
    total = 0
    for each in pids:
        fields = _stat(each)
        if fields is not None:
            total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return total / TICK


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / TICK, total / TICK


class Backends:
    """CPU of the PostgreSQL backends connected to one database (this monitor excluded).

    ``sample()`` returns {pid: CPU seconds}; the difference of two samples counts a backend
    that appeared in between in full and loses one that ended (pooled connections stay)."""

    def __init__(self, libpq_url: str) -> None:
        import psycopg

        self.connection = psycopg.connect(libpq_url, autocommit=True)

    def sample(self) -> dict[int, float]:
        rows = self.connection.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        return {int(pid): own_cpu_seconds(int(pid)) for (pid,) in rows}

    @staticmethod
    def spent(before: dict[int, float], after: dict[int, float]) -> float:
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()


# --- round trips ----------------------------------------------------------------------------


class _Counter:
    """A running count in a file of this process's own, kept cheap: it runs in the process
    measured, on every round trip. No lock: ``next`` on an ``itertools.count`` is atomic, and
    two threads writing their numbers out of order leave the file one or two behind until the
    next round trip (a window's edges may miss as many: nothing at 2 decimals a message). No
    ``getpid`` call each time: a fork starts a new file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._forget()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self.numbers = itertools.count(1)
        self.map: mmap.mmap | None = None

    def _open(self) -> mmap.mmap:
        path = self.folder / str(os.getpid())
        path.write_bytes(b"\0" * 8)
        with path.open("r+b") as handle:
            self.map = mmap.mmap(handle.fileno(), 8)
        return self.map

    def add(self) -> None:
        struct.pack_into("q", self.map or self._open(), 0, next(self.numbers))


def count_round_trips(
    round_trip: Callable[[list[str]], None], *, statements: bool = True
) -> Callable[[], None]:
    """Call ``round_trip(statements)`` for every network round trip psycopg makes, with what
    went out in it (every engine, every connection of this process).

    Outside a pipeline: each statement executed (an ``executemany`` once), preceded by the
    ``BEGIN`` psycopg sends on its own when a statement opens a transaction, and each
    ``COMMIT`` or ``ROLLBACK`` of an open transaction. In pipeline mode statements are only
    queued: the round trip is the sync that sends them and reads their results (leaving the
    pipeline, ``Pipeline.sync()``, or a commit in the pipeline), with the ``BEGIN`` it carries.
    Counted in psycopg, not in SQLAlchemy, so statements sent by any layer count alike, and
    in ``ruta.sql._send``, which hands libpq a batch's query string without a cursor. Returns
    what undoes it (tests/gateway/test_lean_path.py counts a walk, then stops). With
    ``statements`` off, a batch is not split into its statements (``round_trip`` gets an empty
    list): the count alone, at the least cost to the process measured."""
    import psycopg
    from psycopg import pq

    import ruta.sql

    idle = pq.TransactionStatus.IDLE

    def opens(conn: Any) -> bool:
        return bool(conn.info.transaction_status == idle and not conn.autocommit)

    def queued(conn: Any) -> list[str]:
        found: list[str] = conn.__dict__.setdefault("_bench_queued", [])
        return found

    def flush(conn: Any) -> None:
        statements = queued(conn)
        if statements:
            round_trip(list(statements))
            statements.clear()

    def sql_of(query: Any) -> str:
        return query if isinstance(query, str) else repr(query)

    def on_execute(original: Any) -> Any:
        def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            conn = self._conn
            if conn._pipeline is not None:
                statements = queued(conn)
                if not statements and opens(conn):
                    statements.append("BEGIN")
                statements.append(sql_of(query))
            else:
                if opens(conn):
                    round_trip(["BEGIN"])
                round_trip([sql_of(query)])
            return original(self, query, *args, **kwargs)

        return execute

    def on_end(original: Any, word: str) -> Any:
        def end(self: Any) -> Any:
            if self._pipeline is not None:
                if self.info.transaction_status != idle or queued(self):
                    queued(self).append(word)
                    flush(self)  # psycopg syncs a pipeline on commit and rollback
            elif self.info.transaction_status != idle:
                round_trip([word])
            return original(self)

        return end

    def on_send(original: Any) -> Any:
        def send(raw: Any, query: str, *args: Any) -> Any:
            round_trip(query.split(";\n") if statements else [])
            return original(raw, query, *args)

        return send

    def on_sync(original: Any) -> Any:
        def sync(self: Any, *args: Any, **kwargs: Any) -> Any:
            flush(self._conn)
            return original(self, *args, **kwargs)

        return sync

    patched = [
        (psycopg.Cursor, "execute", on_execute),
        (psycopg.Cursor, "executemany", on_execute),
        (psycopg.Connection, "commit", lambda f: on_end(f, "COMMIT")),
        (psycopg.Connection, "rollback", lambda f: on_end(f, "ROLLBACK")),
        (psycopg.Pipeline, "sync", on_sync),
        (psycopg.Pipeline, "__exit__", on_sync),
        (ruta.sql, "_send", on_send),
    ]
    originals = [(owner, name, owner.__dict__[name]) for owner, name, _ in patched]
    for owner, name, wrap in patched:
        setattr(owner, name, wrap(getattr(owner, name)))

    def undo() -> None:
        for owner, name, original in originals:
            setattr(owner, name, original)

    return undo


def install(folder: str | os.PathLike[str]) -> None:
    """Count this process's database round trips into ``folder``."""
    counter = _Counter(Path(folder))
    count_round_trips(lambda _statements: counter.add(), statements=False)


def read_round_trips(folder: Path) -> int:
    total = 0
    for path in folder.iterdir():
        with contextlib.suppress(OSError, struct.error):
            total += struct.unpack("q", path.read_bytes()[:8])[0]
    return total


def hook_environment(env: dict[str, str], folder: Path) -> dict[str, str]:
    """``env`` for a process whose round trips are counted into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [str(HOOK_DIR), str(HOOK_DIR.parent), env.get("PYTHONPATH", "")]
    return {**env, ENV: str(folder), "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


# --- one window -----------------------------------------------------------------------------


@dataclass
class Snapshot:
    """Everything measured at one edge of the measured window."""

    processes: dict[str, float]  # name -> CPU seconds (the process and its descendants)
    backends: dict[int, float]
    round_trips: int
    machine_busy: float
    machine_total: float
    me: float

    @classmethod
    def take(
        cls, processes: dict[str, int], backends: Backends | None, counts: Path | None
    ) -> Snapshot:
        busy, total = machine_busy_seconds()
        times = os.times()
        return cls(
            processes={name: cpu_seconds(pid) for name, pid in processes.items()},
            backends=backends.sample() if backends is not None else {},
            round_trips=read_round_trips(counts) if counts is not None else 0,
            machine_busy=busy,
            machine_total=total,
            me=times.user + times.system,
        )


@dataclass
class Window:
    """CPU seconds and round trips between two snapshots."""

    processes: dict[str, float]
    postgres: float
    round_trips: int
    me: float
    machine_busy: float
    machine_total: float

    @classmethod
    def between(cls, before: Snapshot, after: Snapshot) -> Window:
        return cls(
            processes={
                n: after.processes[n] - before.processes.get(n, 0.0) for n in after.processes
            },
            postgres=Backends.spent(before.backends, after.backends),
            round_trips=after.round_trips - before.round_trips,
            me=after.me - before.me,
            machine_busy=after.machine_busy - before.machine_busy,
            machine_total=after.machine_total - before.machine_total,
        )

    @property
    def busy_percent(self) -> float:
        return 100.0 * self.machine_busy / self.machine_total if self.machine_total else 0.0

    @property
    def others(self) -> float:
        """CPU seconds of everything else on the machine (other people's work)."""
        ours = sum(self.processes.values()) + self.postgres + self.me
        return max(0.0, self.machine_busy - ours)
