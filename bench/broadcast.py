"""Broadcast benchmark: one alert to 100,000 subscribers through N ``ruta worker`` processes.

Not a test. Sets up a private PostgreSQL database (``ruta_bench_broadcast``, its schema dropped
and rebuilt each run) and Redis db 11 (flushed), migrates, loads the demo directory, writes the
subscribers directly (contacts encrypted as Ruta does), starts the fake provider and the workers.

1. Throughput: one urgent broadcast over Africa's Talking (batches of ``RUTA_BROADCAST_BATCH``
   recipients per API call) with no rate limit; the time from enqueueing ``start_broadcast`` to
   the broadcast being done (every recipient handed over), and each worker's peak RSS (VmHWM).
2. Rate: workers restarted with ``RUTA_BROADCAST_RATE`` (default 50); a broadcast over Twilio
   (one request a message) to ``--rate-messages`` people; the rate measured from the fake
   provider's receive times.

    .venv/bin/python bench/broadcast.py --subscribers 100000 --workers 2

Everything it starts is stopped at the end, also on errors and Ctrl-C. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inbound import HOST, REPO, log, prepare_database, run_cli, ruta_environment
from referrals import (
    Process,
    check_stop,
    flush_redis,
    free_port,
    provider_command,
    stop_on_signals,
    wait_provider,
    wait_workers,
    worker_command,
)

TARGET_SECONDS = 60.0
TARGET_RSS_MB = 200.0
RATE_TOLERANCE = 0.05
QUEUE_PREFIX = "ruta-bench-broadcast"


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def add_subscribers(app: Any, place: str, count: int, start: int, language: str) -> None:
    from sqlalchemy import insert, select

    from ruta import crypto
    from ruta.db import db
    from ruta.models import Contact, Municipality, Subscription

    vault = crypto.current()
    with app.app_context(), db.transaction() as session:
        municipality = session.scalar(select(Municipality.id).where(Municipality.code == place))
        for first in range(start, start + count, 5000):
            numbers = [f"+5067{i:07d}" for i in range(first, min(first + 5000, start + count))]
            rows = [
                {"phone_hash": vault.lookup_hash(n), "phone": n, "opted_out": False}
                for n in numbers
            ]
            ids = session.scalars(insert(Contact).returning(Contact.id), rows).all()
            session.execute(
                insert(Subscription),
                [
                    {
                        "contact_id": i,
                        "municipality_id": municipality,
                        "topic": "general",
                        "language": language,
                        "active": True,
                    }
                    for i in ids
                ],
            )


def run_broadcast(app: Any, place: str, channel: str, timeout: float) -> tuple[int, float]:
    """Create an urgent broadcast, enqueue its start, wait until done; (id, seconds)."""
    from sqlalchemy import select

    from ruta.db import db
    from ruta.models import Broadcast, Municipality
    from workers.broadcast_jobs import _enqueue_start

    with app.app_context():
        with db.transaction() as session:
            municipality = session.scalar(select(Municipality.id).where(Municipality.code == place))
            broadcast = Broadcast(
                title="bench",
                municipality_id=municipality,
                topic="general",
                texts={"es": "Ruta: la unidad movil visita el jueves de 8 a 14."},
                urgent=True,
                status="scheduled",
                channel=channel,
                created_by="bench",
            )
            session.add(broadcast)
            session.flush()
            broadcast_id = broadcast.id
        started = time.time()
        _enqueue_start(broadcast_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            check_stop()
            with db.transaction() as session:
                found = session.get(Broadcast, broadcast_id)
                assert found is not None
                if found.status == "done" and found.finished_at is not None:
                    return broadcast_id, found.finished_at.timestamp() - started
            time.sleep(0.25)
    raise SystemExit(f"broadcast {broadcast_id} not done after {timeout:.0f}s")


def provider_messages(port: int, provider: str) -> list[dict[str, Any]]:
    import http.client
    import json

    connection = http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        connection.request("GET", f"/_fake/messages?provider={provider}")
        messages: list[dict[str, Any]] = json.loads(connection.getresponse().read())
        return messages
    finally:
        connection.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--bench-database", default="ruta_bench_broadcast")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11", help="flushed first")
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--rate-messages", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    if not 1 <= args.subscribers <= 1_000_000 or not 1 <= args.workers <= 16:
        parser.error("need 1 <= --subscribers <= 1000000 and 1 <= --workers <= 16")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    processes: list[Process] = []
    workers: list[Process] = []
    with tempfile.TemporaryDirectory(prefix="ruta-bench-") as tmp, stop_on_signals():
        try:
            logs = Path(tmp)
            database_url = prepare_database(args.database_url, args.bench_database)
            flush_redis(args.redis_url)
            port = free_port()
            env = ruta_environment(database_url, args.redis_url, port, logs)
            env.pop("PUBLIC_BASE_URL")
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
            env.update(
                TWILIO_API_BASE_URL=f"http://{HOST}:{port}",
                AT_USERNAME="bench",
                AT_API_KEY="bench-key",
                AT_API_BASE_URL=f"http://{HOST}:{port}",
                RUTA_QUEUE_PREFIX=QUEUE_PREFIX,
                RUTA_BROADCAST_RATE="0",
            )
            for step in (("db", "upgrade"), ("demo", "load")):
                run_cli(env, *step)
            provider = Process("fake-provider", provider_command(port), env, logs)
            processes.append(provider)
            wait_provider(provider, port)

            os.environ.update(env)
            sys.path.insert(0, str(REPO))
            from app import create_app

            app = create_app()
            began = time.monotonic()
            add_subscribers(app, "cr-upala", args.subscribers, 0, "es")
            add_subscribers(app, "cr-los-chiles", args.rate_messages, 5_000_000, "es")
            log(
                f"{args.subscribers + args.rate_messages} subscribers in"
                f" {time.monotonic() - began:.1f}s"
            )

            def start_workers(rate: float) -> list[Process]:
                started = [
                    Process(
                        f"worker-{rate:g}-{i}",
                        worker_command("simple"),
                        {**env, "RUTA_BROADCAST_RATE": str(rate)},
                        logs,
                    )
                    for i in range(args.workers)
                ]
                processes.extend(started)
                wait_workers(started, args.redis_url)
                return started

            workers = start_workers(0)
            _, seconds = run_broadcast(app, "cr-upala", "africastalking", args.timeout)
            rss = [peak_rss_mb(w.pid) for w in workers]
            sent = provider_messages(port, "africastalking")
            unique = len({m["to"] for m in sent})
            log(
                f"{len(sent)} messages ({unique} people) in {seconds:.1f}s;"
                f" peak RSS {', '.join(f'{r:.0f}' for r in rss)} MB"
            )
            for worker in workers:
                worker.stop()
            flush_redis(args.redis_url)  # the stopped workers' registrations

            workers = start_workers(args.rate)
            _, rate_seconds = run_broadcast(app, "cr-los-chiles", "twilio", args.timeout)
            stamps = sorted(
                datetime.fromisoformat(m["received_at"]).astimezone(UTC).timestamp()
                for m in provider_messages(port, "twilio")
            )
            measured = (len(stamps) - 1) / (stamps[-1] - stamps[0])
            log(f"rate limit {args.rate:g}/s: {len(stamps)} messages, measured {measured:.2f}/s")
            ok = (
                len(sent) == unique == args.subscribers
                and seconds <= TARGET_SECONDS
                and max(rss) <= TARGET_RSS_MB
                and abs(measured - args.rate) <= RATE_TOLERANCE * args.rate
            )
            print(
                f"broadcast: {args.subscribers} subscribers, {args.workers} workers, AT batches:"
                f" {seconds:.1f} s (target <= {TARGET_SECONDS:.0f}),"
                f" {args.subscribers / seconds:.0f} msg/s; peak RSS per worker"
                f" {', '.join(f'{r:.0f}' for r in rss)} MB (target <= {TARGET_RSS_MB:.0f});"
                f" rate {args.rate:g}/s over Twilio: measured {measured:.2f}/s"
                f" ({len(stamps)} messages in {rate_seconds:.1f} s); {'PASS' if ok else 'FAIL'}"
            )
            return 0 if ok else 1
        except KeyboardInterrupt:
            return 130
        finally:
            for process in processes:
                process.stop()


if __name__ == "__main__":
    sys.exit(main())
