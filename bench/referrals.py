"""Referral benchmark: a burst of committed cases, handed over to the focal points by RQ workers.

Not a test. One command sets up a private PostgreSQL database (``ruta_bench_referrals`` by
default, its schema dropped and rebuilt each run), migrates it, publishes the flows and loads the
demo directory (focal points and routing chains for four municipalities), starts the fake Twilio
provider and N ``ruta worker`` processes, then commits a burst of cases as fast as one process
can, each through the code path of the webhook (lock the contact, which the person's earlier
messages created before the burst unless ``--new-contacts``; ``referrals.open_case`` writes the
case and its outbox event, commit, ``workers.jobs.hand_over``). A case is handed over when the
fake provider has recorded its alert to every focal point of position 0 of its chain; the
benchmark measures cases per second from the first commit to the last hand-over, and the latency
from each commit to its hand-over.

    .venv/bin/python bench/referrals.py --cases 2000 --workers 2

Everything it starts is stopped at the end, also on errors and Ctrl-C. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# The set-up helpers of the inbound benchmark (same folder): database, environment, `ruta` CLI.
from inbound import (
    HOST,
    REPO,
    VENV_BIN,
    libpq_url,
    log,
    prepare_database,
    run_cli,
    ruta_environment,
)
from measure import (
    Backends,
    _stat,
    cpu_seconds,
    descendants_of,
    hook_environment,
    install,
    machine_busy_seconds,
    read_round_trips,
)

# Targets on the reference machine (2 cores), 2,000 cases, 2 workers.
TARGET_CASES_PER_S = 200.0
TARGET_P95_S = 2.0

MUNICIPALITIES = ("cr-upala", "cr-los-chiles", "hn-san-pedro-sula", "pa-panama")
CATEGORIES = ("health", "documents", "shelter", "safety", "family", "women", "work", "education")
#: Every n-th person says they are not safe: an immediate case (the others are standard).
UNSAFE_EVERY = 10
ALERT = re.compile(r"\b(?:solicitud|request) ([23456789A-Z]{5})\b")
POLL_INTERVAL_S = 0.5
QUEUE_PREFIX = "ruta-bench"


#: Set by SIGINT/SIGTERM; the loops stop at the next safe point (never inside a driver call,
#: where an exception would be wrapped as a database error).
STOP = threading.Event()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    def stop(_signum: int, _frame: Any) -> None:
        STOP.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def check_stop() -> None:
    if STOP.is_set():
        raise KeyboardInterrupt


def person_number(index: int) -> str:
    """Fictional Costa Rican numbers, distinct per case (the demo focal points use +506000...)."""
    return f"+50689{index:06d}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


# --- processes ------------------------------------------------------------------------------


class Process:
    """A child in its own session, logging to a file; stopped by its id (and its children's)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.log_path = logs / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 20) -> str:
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM (RQ: warm shut-down, finish the job in hand), then SIGKILL to what is left:
        the process, its session, and its descendants (RQ's work-horses call setpgrp)."""
        if self.alive():
            descendants = descendants_of(self.pid)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)  # its own session only
                self.process.wait(timeout=5)
            for pid in descendants:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        self._log.close()


def named_cpu_seconds(name: str) -> float:
    """CPU of every process called ``name`` (postgres, redis-server), reaped children included."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if (entry / "comm").read_text().strip() == name:
                fields = _stat(int(entry.name))
                if fields is not None:
                    total += sum(int(v) for v in fields[11:15])
    return total / tick


@dataclass
class CpuSnapshot:
    workers: float
    provider: float
    bench: float
    postgres: float  # the backends connected to the benchmark's database
    postgres_all: float  # every postgres process (other databases' work included)
    redis: float
    machine_busy: float
    machine_total: float
    backends: dict[int, float]
    worker_round_trips: int
    bench_round_trips: int

    @classmethod
    def take(
        cls, workers: list[Process], provider: Process, backends: Backends, counts: Path
    ) -> CpuSnapshot:
        times = os.times()
        busy, total = machine_busy_seconds()
        return cls(
            workers=sum(cpu_seconds(w.pid) for w in workers),
            provider=cpu_seconds(provider.pid),
            bench=times.user + times.system,
            postgres=0.0,
            postgres_all=named_cpu_seconds("postgres"),
            redis=named_cpu_seconds("redis-server"),
            machine_busy=busy,
            machine_total=total,
            backends=backends.sample(),
            worker_round_trips=read_round_trips(counts / "workers"),
            bench_round_trips=read_round_trips(counts / "bench"),
        )

    def minus(self, earlier: CpuSnapshot) -> dict[str, float]:
        spent = {
            name: round(getattr(self, name) - getattr(earlier, name), 2)
            for name in self.__dataclass_fields__
            if name != "backends"
        }
        spent["postgres"] = round(Backends.spent(earlier.backends, self.backends), 2)
        ours = ("workers", "provider", "bench", "postgres_all", "redis")
        # Other processes on the machine (a busy neighbour makes the figures unreliable).
        spent["other"] = round(max(0.0, spent["machine_busy"] - sum(spent[n] for n in ours)), 2)
        return spent


# --- the fake provider ----------------------------------------------------------------------


def provider_command(port: int) -> list[str]:
    # `ruta fake-provider` logs a line per request; this is the same server, quiet.
    code = f"from providers.fake_provider import serve; serve({HOST!r}, {port}, quiet=True)"
    return [sys.executable, "-c", code]


def slow_provider(port: int, seconds: float, sends: int) -> None:
    """The next ``sends`` sends answered after ``seconds`` each (the fake's script)."""
    body = json.dumps(
        {"provider": "twilio", "responses": [{"http_status": 201, "delay": seconds}] * sends}
    )
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("POST", "/_fake/script", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"fake provider answered HTTP {response.status}")
    finally:
        connection.close()


def fetch_messages(port: int) -> list[dict[str, Any]]:
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("GET", "/_fake/messages?provider=twilio")
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"fake provider answered HTTP {response.status}")
        messages: list[dict[str, Any]] = json.loads(body)
        return messages
    finally:
        connection.close()


def wait_provider(provider: Process, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_stop()
        if not provider.alive():
            raise SystemExit(f"fake provider exited early:\n{provider.tail()}")
        with contextlib.suppress(OSError, http.client.HTTPException, RuntimeError):
            fetch_messages(port)
            return
        time.sleep(0.2)
    raise SystemExit(f"fake provider not ready after {timeout:.0f}s:\n{provider.tail()}")


# --- workers --------------------------------------------------------------------------------


def worker_command(kind: str) -> list[str]:
    """``ruta worker`` exactly as the Procfile runs it (jobs in the worker process), or with
    ``--fork`` (a forked work-horse per job)."""
    command = [str(VENV_BIN / "ruta"), "worker"]
    return [*command, "--fork"] if kind == "fork" else command


def wait_workers(workers: list[Process], redis_url: str, timeout: float = 60.0) -> None:
    """Until every worker has registered in Redis (it then listens on the queues)."""
    from redis import Redis
    from rq import Worker

    connection = Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            check_stop()
            for worker in workers:
                if not worker.alive():
                    raise SystemExit(f"{worker.name} exited early:\n{worker.tail()}")
            if Worker.count(connection=connection) >= len(workers):
                return
            time.sleep(0.2)
    finally:
        connection.close()
    raise SystemExit(f"workers not registered after {timeout:.0f}s:\n{workers[0].tail()}")


# --- the burst ------------------------------------------------------------------------------


@dataclass
class Burst:
    committed: dict[str, float] = field(default_factory=dict)  # reference -> commit (epoch s)
    expected: dict[str, int] = field(default_factory=dict)  # reference -> alerts expected
    first_commit: float = math.nan
    last_commit: float = math.nan


def create_contacts(app: Any, cases: int) -> None:
    """The people of the burst, as they are when they ask: a person's first message created
    their contact, and several menus came before the consent that opens the case. Created
    before the measured window (``--new-contacts`` creates each in the case's own transaction
    instead, as the benchmark did before 2026-12-01)."""
    from ruta import clock, contacts
    from ruta.db import db

    with app.app_context():
        for start in range(0, cases, 200):
            check_stop()
            with db.transaction() as session:
                for index in range(start, min(cases, start + 200)):
                    contacts.lock_contact(session, person_number(index), seen_at=clock.now())


def commit_burst(app: Any, cases: int) -> Burst:
    """Commit ``cases`` consenting requests, one transaction each, as the webhook does (the
    contact locked by its lean statement, ``opening.open_case``: the statements a person's last
    answer runs), and hand each one's work to RQ after its commit."""
    from flows.services import CaseRequest
    from ruta import clock, contacts, opening, sql
    from ruta import policy as policies
    from ruta.db import db
    from workers import jobs

    burst = Burst()
    places: dict[str, tuple[str, str]] = {}
    with app.app_context():
        policy = policies.load(app.config.get("RUTA_POLICY_FILE"))
        engine = db.bound()
        for index in range(cases):
            check_stop()
            municipality = MUNICIPALITIES[index % len(MUNICIPALITIES)]
            category = CATEGORIES[(index // len(MUNICIPALITIES)) % len(CATEGORIES)]
            now = clock.now()
            number = person_number(index)
            with sql.transaction(engine) as tx:
                (rows,) = tx.run(contacts.lock(contacts.hash_values(number), now))
                if not rows:
                    (rows,) = tx.run(contacts.create(number, now))
                contact = contacts.locked(rows)
                assert contact is not None
                reference, work = opening.open_case(
                    tx,
                    CaseRequest(
                        category=category,
                        municipality=municipality,
                        safe=index % UNSAFE_EVERY != 0,
                        consent=True,
                        consent_wording="help:v1:consent_focal_points",
                        channel="sms",
                        shared_phone=False,
                        contact_ok=False,
                    ),
                    contact_id=contact.id,
                    now=now,
                    policy=policy,
                )
            committed = time.time()
            if reference is None or not work.outbox_ids:
                raise SystemExit(f"case {reference} committed without an outbox event")
            burst.committed[reference] = committed
            places[reference] = (municipality, category)
            if index == 0:
                burst.first_commit = committed
            burst.last_commit = committed
            jobs.hand_over(work)  # a Redis error is logged, counted, and left to the sweeper
        burst.expected = expected_alerts(app, places)
    return burst


class CountingHandler(logging.Handler):
    """Counts the warnings of ``ruta.jobqueue`` (an enqueue Redis refused)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def expected_alerts(app: Any, places: dict[str, tuple[str, str]]) -> dict[str, int]:
    """Alerts each case should cause: the focal points of position 0 of its chain (as
    ``referrals.recipients`` finds them: active, with an agreement in force)."""
    from sqlalchemy import select

    from ruta import clock, referrals
    from ruta.db import db
    from ruta.models import Case

    per_place: dict[tuple[str, str], int] = {}
    with app.app_context(), db.transaction() as session:
        for reference, place in places.items():
            if place in per_place:
                continue
            case = session.scalar(select(Case).where(Case.reference == reference))
            assert case is not None
            per_place[place] = len(referrals.recipients(session, case, 0, clock.now()))
            if per_place[place] == 0:
                raise SystemExit(f"no focal point at position 0 for {place}: demo data missing?")
    return {reference: per_place[place] for reference, place in places.items()}


# --- hand-over ------------------------------------------------------------------------------


@dataclass
class Delivery:
    handed_over: dict[str, float] = field(default_factory=dict)  # reference -> last alert in
    alerts: int = 0
    duplicates: int = 0
    unknown: int = 0
    polls: int = 0
    timed_out: bool = False
    stopped_workers: list[str] = field(default_factory=list)


def received(message: dict[str, Any]) -> float:
    return datetime.fromisoformat(message["received_at"]).timestamp()


def tally(burst: Burst, messages: list[dict[str, Any]], delivery: Delivery) -> None:
    per_case: dict[str, list[float]] = {}
    sends: Counter[tuple[str, str]] = Counter()
    unknown = 0
    for message in messages:
        match = ALERT.search(message.get("body") or "")
        if match is None or match.group(1) not in burst.committed:
            unknown += 1
            continue
        reference = match.group(1)
        sends[(reference, message["to"])] += 1
        per_case.setdefault(reference, []).append(received(message))
    delivery.alerts = len(messages) - unknown
    delivery.unknown = unknown
    delivery.duplicates = sum(count - 1 for count in sends.values() if count > 1)
    distinct: Counter[str] = Counter(reference for reference, _to in sends)
    delivery.handed_over = {
        reference: max(times)
        for reference, times in per_case.items()
        if distinct[reference] >= burst.expected.get(reference, 1)
    }


def wait_handed_over(burst: Burst, port: int, workers: list[Process], deadline: float) -> Delivery:
    """Poll the fake provider until every case is handed over, a worker dies, or the deadline."""
    delivery = Delivery()
    last_report = time.monotonic()
    while True:
        check_stop()
        delivery.polls += 1
        tally(burst, fetch_messages(port), delivery)
        if len(delivery.handed_over) >= len(burst.committed):
            return delivery
        delivery.stopped_workers = [w.name for w in workers if not w.alive()]
        if delivery.stopped_workers:
            return delivery
        if time.monotonic() >= deadline:
            delivery.timed_out = True
            return delivery
        if time.monotonic() - last_report >= 5.0:
            last_report = time.monotonic()
            log(f"handed over {len(delivery.handed_over)}/{len(burst.committed)} ...")
        STOP.wait(POLL_INTERVAL_S)


def server_side_state(app: Any) -> dict[str, Any]:
    """What the database and RQ say after the run: alert statuses, undispatched events, failed
    jobs (a clean run has every alert sent and nothing failed)."""
    from rq.registry import FailedJobRegistry
    from rq.serializers import JSONSerializer
    from sqlalchemy import func, select

    from ruta.db import db
    from ruta.jobqueue import PRIORITIES, queue_name
    from ruta.models import Message, MessagePurpose, OutboxEvent

    with app.app_context(), db.transaction() as session:
        statuses = dict(
            session.execute(
                select(Message.status, func.count())
                .where(Message.purpose == MessagePurpose.ALERT.value)
                .group_by(Message.status)
            ).all()
        )
        undispatched = session.scalar(
            select(func.count()).where(OutboxEvent.dispatched_at.is_(None))
        )
    redis = app.extensions["ruta.redis"]
    failed = sum(
        FailedJobRegistry(
            queue_name(QUEUE_PREFIX, priority), connection=redis, serializer=JSONSerializer
        ).count
        for priority in PRIORITIES
    )
    return {
        "alerts_by_status": {str(k): int(v) for k, v in statuses.items()},
        "undispatched_events": int(undispatched or 0),
        "failed_jobs": failed,
    }


# --- report ---------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def summarise(
    args: argparse.Namespace,
    burst: Burst,
    delivery: Delivery,
    cpu: dict[str, float],
    state: dict[str, Any],
    burst_started: float,
    enqueue_warnings: int,
) -> dict[str, Any]:
    cases = len(burst.committed)
    latencies = [delivery.handed_over[r] - burst.committed[r] for r in delivery.handed_over]
    handed = sorted(delivery.handed_over.values())
    last = handed[-1] if handed else math.nan
    span = last - burst.first_commit
    complete = len(handed) == cases
    expected_alerts = sum(burst.expected.values())
    rate = len(handed) / span if handed and span > 0 else 0.0
    p95 = percentile(latencies, 95)
    clean = (
        complete
        and delivery.duplicates == 0
        and delivery.alerts == expected_alerts
        and state["failed_jobs"] == 0
        and enqueue_warnings == 0
    )
    rate_ok = complete and rate >= TARGET_CASES_PER_S
    p95_ok = complete and p95 <= TARGET_P95_S
    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "cases": cases,
        "workers": args.workers,
        "worker_kind": args.worker_kind,
        "provider_latency_s": args.provider_latency,
        "workers_started": args.start_workers,
        "commit_s": round(burst.last_commit - burst_started, 3),
        "commits_per_s": round(cases / (burst.last_commit - burst_started), 1),
        "handed_over": len(handed),
        "missing": cases - len(handed),
        "missing_sample": sorted(set(burst.committed) - set(delivery.handed_over))[:10],
        "alerts": delivery.alerts,
        "alerts_expected": expected_alerts,
        "duplicates": delivery.duplicates,
        "unknown_messages": delivery.unknown,
        "enqueue_warnings": enqueue_warnings,
        "first_commit_to_last_hand_over_s": round(span, 3),
        "cases_per_s": round(rate, 1),
        "hand_over_rate_per_s": round((len(handed) - 1) / (last - handed[0]), 1)
        if len(handed) > 1 and last > handed[0]
        else 0.0,
        "latency_s": {
            "p50": round(percentile(latencies, 50), 3),
            "p95": round(p95, 3),
            "max": round(max(latencies, default=math.nan), 3),
            "min": round(min(latencies, default=math.nan), 3),
        },
        "cpu_s": cpu,
        "server": state,
        "timed_out": delivery.timed_out,
        "stopped_workers": delivery.stopped_workers,
        "targets": {"cases_per_s_min": TARGET_CASES_PER_S, "p95_s_max": TARGET_P95_S},
        "rate_ok": rate_ok,
        "p95_ok": p95_ok,
        "clean": clean,
        "pass": rate_ok and p95_ok and clean,
    }


def report(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    r, lat, cpu = result, result["latency_s"], result["cpu_s"]
    kind = (
        "ruta worker --fork: a forked work-horse per job"
        if r["worker_kind"] == "fork"
        else "ruta worker as deployed: jobs in the worker process"
    )
    cases = r["cases"]
    wall = cpu["machine_total"] / (r["cpus"] or 1)
    print(
        f"\nReferrals: burst of {cases} committed cases, {r['workers']} workers ({kind}),"
        f" started {r['workers_started']} the burst; {r['cpus']} CPUs"
        + (
            f"; the provider answers each send after {r['provider_latency_s']:g} s"
            if r["provider_latency_s"]
            else ""
        )
        + "\n"
    )
    print(
        f"committed       {cases} cases in {r['commit_s']:.2f} s: {r['commits_per_s']:.1f}/s"
        " (one process, one transaction per case, then hand_over to RQ)"
    )
    print(
        f"handed over     {r['handed_over']} of {cases}; alerts {r['alerts']}"
        f" (expected {r['alerts_expected']}), duplicates {r['duplicates']},"
        f" other messages {r['unknown_messages']}"
    )
    print(
        f"cases/s         {r['cases_per_s']:.1f} (first commit -> last hand-over,"
        f" {r['first_commit_to_last_hand_over_s']:.2f} s)"
        f"  target >= {TARGET_CASES_PER_S:g}: {'PASS' if r['rate_ok'] else 'FAIL'}"
    )
    print(f"hand-over rate  {r['hand_over_rate_per_s']:.1f}/s (first -> last hand-over)")
    print(
        f"commit -> hand-over  p50 {lat['p50']:.3f} s  p95 {lat['p95']:.3f} s"
        f"  max {lat['max']:.3f} s  (min {lat['min']:.3f} s)"
        f"  p95 target <= {TARGET_P95_S:g} s: {'PASS' if r['p95_ok'] else 'FAIL'}"
    )
    busy = cpu["machine_busy"] / cpu["machine_total"] * 100 if cpu["machine_total"] else 0.0
    print(
        f"CPU s over {wall:.1f} s: workers {cpu['workers']:.2f} (work-horses, scheduler"
        f" included), postgres {cpu['postgres']:.2f} (this database's backends;"
        f" {cpu['postgres_all']:.2f} all postgres processes), fake provider"
        f" {cpu['provider']:.2f}, bench {cpu['bench']:.2f}, redis {cpu['redis']:.2f},"
        f" anything else {cpu['other']:.2f}; machine {busy:.0f}% busy"
    )
    if r["handed_over"]:
        per = 1000.0 / r["handed_over"]
        print(
            f"CPU ms per case: workers {cpu['workers'] * per:.1f}, postgres"
            f" {cpu['postgres'] * per:.1f}, fake provider {cpu['provider'] * per:.1f},"
            f" bench {cpu['bench'] * per:.1f}, redis {cpu['redis'] * per:.1f}"
        )
        print(
            f"round trips per case: workers {cpu['worker_round_trips'] * per / 1000:.1f},"
            f" committing (bench) {cpu['bench_round_trips'] * per / 1000:.1f}"
            " (statements + BEGIN + COMMIT/ROLLBACK, bench/measure.py; the workers' pool"
            " pre-ping not counted)"
        )
    server = r["server"]
    print(
        f"server side     alerts by status {server['alerts_by_status']},"
        f" undispatched events {server['undispatched_events']},"
        f" RQ failed jobs {server['failed_jobs']}"
    )
    problems = []
    if r["missing"]:
        problems.append(f"{r['missing']} CASES NOT HANDED OVER, e.g. {r['missing_sample']}")
    if r["timed_out"]:
        problems.append("TIMED OUT")
    if r["stopped_workers"]:
        problems.append(f"WORKERS DIED: {r['stopped_workers']}")
    if r["duplicates"]:
        problems.append(f"{r['duplicates']} DUPLICATE ALERTS")
    if r["alerts"] != r["alerts_expected"]:
        problems.append(f"{r['alerts']} ALERTS, {r['alerts_expected']} EXPECTED")
    if server["failed_jobs"]:
        problems.append(f"{server['failed_jobs']} FAILED RQ JOBS")
    if r["enqueue_warnings"]:
        problems.append(f"{r['enqueue_warnings']} ENQUEUES REFUSED BY REDIS")
    for problem in problems:
        print(f"\n!!! {problem} !!!")
    print(f"\nOVERALL: {'PASS' if r['pass'] else 'FAIL'}")


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL server to use; the benchmark works in its own --bench-database",
    )
    parser.add_argument(
        "--bench-database",
        default="ruta_bench_referrals",
        help="its schema is dropped each run (not bench/inbound.py's ruta_bench: both may run)",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13", help="flushed first")
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--worker-kind",
        choices=("fork", "simple"),
        default="simple",
        help="simple: `ruta worker` as deployed (jobs in the worker process); fork: --fork",
    )
    parser.add_argument(
        "--start-workers",
        choices=("before", "after"),
        default="before",
        help="before the burst (steady flow) or after it is committed (draining a backlog)",
    )
    parser.add_argument(
        "--new-contacts",
        action="store_true",
        help="create each person's contact in their case's transaction (by default the contacts"
        " exist before the burst, as a person's earlier messages made them)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds from the burst")
    parser.add_argument("--provider-port", type=int, default=0, help="default: a free port")
    parser.add_argument(
        "--provider-latency",
        type=float,
        default=0.0,
        help="seconds the fake provider takes to answer each send (Twilio's API, reached over"
        " the internet, takes 0.1-0.3 s; on loopback the fake answers at once)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.cases <= 100_000 or not 1 <= args.workers <= 16:
        parser.error("need 1 <= --cases <= 100000 and 1 <= --workers <= 16")
    if not 0 < args.timeout <= 3600:
        parser.error("need 0 < --timeout <= 3600")
    return args


def flush_redis(url: str) -> None:
    from redis import Redis

    connection = Redis.from_url(url)
    try:
        host = connection.connection_pool.connection_kwargs.get("host")
        if host not in (None, HOST, "localhost"):
            raise SystemExit("--redis-url must point at this machine (127.0.0.1)")
        connection.flushdb()
    finally:
        connection.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workers: list[Process] = []
    others: list[Process] = []
    app: Any = None
    with tempfile.TemporaryDirectory(prefix="ruta-bench-") as tmp, stop_on_signals():
        try:
            logs = Path(tmp)
            database_url = prepare_database(args.database_url, args.bench_database)
            flush_redis(args.redis_url)
            port = args.provider_port or free_port()
            env = ruta_environment(database_url, args.redis_url, port, logs)
            env.pop("PUBLIC_BASE_URL")  # no delivery-report callbacks: nothing would answer
            # Run the tree this file is in, whatever the editable install maps (new packages).
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
            env.update(
                TWILIO_API_BASE_URL=f"http://{HOST}:{port}",
                RUTA_OUTBOUND_PROVIDER="twilio",
                RUTA_QUEUE_PREFIX=QUEUE_PREFIX,
            )
            setup = (("db", "upgrade"), ("flows", "publish", "--by", "bench"), ("demo", "load"))
            for step in setup:
                check_stop()
                run_cli(env, *step)
            provider = Process("fake-provider", provider_command(port), env, logs)
            others.append(provider)
            wait_provider(provider, port)
            if args.provider_latency > 0:
                slow_provider(port, args.provider_latency, 2 * args.cases + 100)

            os.environ.update(env)  # this process commits the burst with the same settings
            sys.path.insert(0, str(REPO))
            counts = logs / "round-trips"
            (counts / "bench").mkdir(parents=True)
            install(counts / "bench")  # this process's own round trips (the burst's commits)
            worker_env = hook_environment(env, counts / "workers")
            backends = Backends(libpq_url(database_url))
            from sqlalchemy import text

            from app import create_app
            from ruta.db import db

            app = create_app()
            with app.app_context(), db.transaction() as session:
                session.execute(text("SELECT 1"))  # connect before timing
            counter = CountingHandler()
            logging.getLogger("ruta.jobqueue").addHandler(counter)

            def start_workers() -> None:
                for i in range(args.workers):
                    command = worker_command(args.worker_kind)
                    workers.append(Process(f"worker-{i}", command, worker_env, logs))
                wait_workers(workers, args.redis_url)

            if args.start_workers == "before":
                start_workers()
                log(f"{args.workers} workers ({args.worker_kind}) listening; committing ...")
            if not args.new_contacts:
                create_contacts(app, args.cases)
                log(f"{args.cases} people's contacts created (their earlier messages)")
            cpu_start = CpuSnapshot.take(workers, provider, backends, counts)
            burst_started = time.time()
            deadline = time.monotonic() + args.timeout
            burst = commit_burst(app, args.cases)
            log(
                f"committed {len(burst.committed)} cases in"
                f" {burst.last_commit - burst_started:.2f}s"
            )
            if args.start_workers == "after":
                start_workers()
                cpu_start.workers -= sum(cpu_seconds(w.pid) for w in workers)  # their start-up
            delivery = wait_handed_over(burst, port, workers, deadline)
            cpu = CpuSnapshot.take(workers, provider, backends, counts).minus(cpu_start)
            backends.close()
            state = server_side_state(app)
            result = summarise(args, burst, delivery, cpu, state, burst_started, counter.count)
            report(result, args.json)
            for process in workers + others:
                if not process.alive():
                    log(f"{process.name} exited during the run:\n{process.tail()}")
            return 0 if result["pass"] else 1
        except KeyboardInterrupt:
            log("interrupted: stopping the workers and the fake provider")
            return 130
        finally:
            for process in workers + others:
                process.stop()
            if app is not None:
                from ruta.db import db

                if db.engine is not None:
                    db.engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
