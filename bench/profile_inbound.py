"""Where the web's CPU goes for one inbound message: cProfile over a loop of webhook requests,
in one process, through the WSGI app as gunicorn calls it (no HTTP server, no load generator).

    .venv/bin/python bench/profile_inbound.py --database-url postgresql://postgres@127.0.0.1/x \
        --bench-database bench_profile --messages 2000 [--channel ussd] [--sort tottime]

Not a test, not a benchmark of throughput: a profile to read. Phones walk the benchmark's
conversation (bench/inbound.py's requests, pre-built); the first walk of every phone is run
before profiling, so the profile shows a steady stream (existing contacts, warm caches). Also
prints the wall time per message of the profiled loop and of an unprofiled one.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from inbound import (
    CONVERSATION,
    REPO,
    TWILIO_TOKEN,
    USSD_PATH,
    USSD_WALK,
    WEBHOOK_PATH,
    phone_number,
    prepare_database,
    run_cli,
    ruta_environment,
    ussd_number,
)


def build_requests(channel: str, phones: int, walks: int, base: str) -> list[dict[str, Any]]:
    """WSGI environs (without their body stream), in the order a stream of phones sends them."""
    from urllib.parse import urlencode

    from twilio.request_validator import RequestValidator
    from werkzeug.test import EnvironBuilder

    validator = RequestValidator(TWILIO_TOKEN)
    steps = USSD_WALK if channel == "ussd" else CONVERSATION
    environs = []
    for walk in range(walks):
        for seq, text in enumerate(steps):
            for phone in range(phones):
                if channel == "ussd":
                    form = {
                        "sessionId": f"ATUid_profile_{phone}_{walk}",
                        "serviceCode": "*123#",
                        "phoneNumber": ussd_number(phone, walk),
                        "networkCode": "71201",
                        "text": text,
                    }
                    headers: dict[str, str] = {}
                    path = USSD_PATH
                else:
                    form = {
                        "ToCountry": "US",
                        "NumMedia": "0",
                        "Body": text,
                        "To": "+15005550006",
                        "MessageSid": f"SM{walk:08x}{phone:08x}{seq:016x}",
                        "AccountSid": "AC" + "0" * 32,
                        "From": phone_number(phone),
                        "NumSegments": "1",
                        "ApiVersion": "2010-04-01",
                    }
                    headers = {
                        "X-Twilio-Signature": validator.compute_signature(base + WEBHOOK_PATH, form)
                    }
                    path = WEBHOOK_PATH
                body = urlencode(form).encode()
                builder = EnvironBuilder(
                    path=path,
                    method="POST",
                    data=body,
                    headers=headers,
                    content_type="application/x-www-form-urlencoded",
                    base_url=base,
                )
                environ = builder.get_environ()
                environ["bench.body"] = body
                environs.append(environ)
    return environs


def _package(filename: str) -> str:
    """``psycopg``, ``ruta/sql.py``...: what a profiled function belongs to."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if filename.startswith(str(REPO)):
        return filename[len(str(REPO)) + 1 :]
    if filename.startswith("<"):
        return filename
    return "python: " + Path(filename).name


def run(app: Any, environs: list[dict[str, Any]]) -> None:
    statuses: list[str] = []

    def start_response(status: str, _headers: Any, _exc: Any = None) -> None:
        statuses.append(status)

    for environ in environs:
        environ = dict(environ)
        environ["wsgi.input"] = io.BytesIO(environ["bench.body"])
        for _ in app(environ, start_response):
            pass
        if not statuses[-1].startswith("200"):
            raise SystemExit(f"request failed: {statuses[-1]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/bench")
    parser.add_argument("--bench-database", default="bench_profile")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--channel", choices=("sms", "ussd"), default="sms")
    parser.add_argument("--phones", type=int, default=50)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--lines", type=int, default=45)
    parser.add_argument("--callers", nargs="*", default=[], help="print who calls these")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ruta-profile-") as tmp:
        url = prepare_database(args.database_url, args.bench_database)
        env = ruta_environment(url, args.redis_url, 8731, Path(tmp))
        for step in (("db", "upgrade"), ("flows", "publish", "--by", "bench"), ("demo", "load")):
            run_cli(env, *step)
        os.environ.update(env)
        sys.path.insert(0, str(REPO))
        from app import create_app

        app = create_app()
        steps = len(USSD_WALK if args.channel == "ussd" else CONVERSATION)
        walks = max(1, args.messages // (steps * args.phones)) + 1
        environs = build_requests(args.channel, args.phones, walks * 2, env["PUBLIC_BASE_URL"])
        first = steps * args.phones  # one walk of every phone: contacts exist, caches are warm
        run(app, environs[:first])
        half = (len(environs) - first) // 2
        plain, profiled = environs[first : first + half], environs[first + half :]
        started, cpu = time.perf_counter(), time.process_time()
        run(app, plain)
        plain_ms = (time.perf_counter() - started) * 1000 / len(plain)
        plain_cpu = (time.process_time() - cpu) * 1000 / len(plain)
        # CPU time, not wall time: waiting on PostgreSQL (and on other processes of a shared
        # machine) is not this process's cost.
        profiler = cProfile.Profile(time.process_time)
        started = time.perf_counter()
        profiler.enable()
        run(app, profiled)
        profiler.disable()
        profiled_ms = (time.perf_counter() - started) * 1000 / len(profiled)
        stats = pstats.Stats(profiler)
        by_package: dict[str, float] = {}
        for (filename, _, _), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
            package = _package(filename)
            by_package[package] = by_package.get(package, 0.0) + own
        total = sum(by_package.values()) or 1.0
        stats.strip_dirs().sort_stats(args.sort).print_stats(args.lines)
        for name in args.callers:
            stats.print_callers(name)
        print("own time by package:")
        for package, own in sorted(by_package.items(), key=lambda item: -item[1])[:25]:
            print(f"  {100 * own / total:5.1f} %  {package}")
        print(
            f"{len(plain)} messages unprofiled: {plain_ms:.2f} ms wall,"
            f" {plain_cpu:.2f} ms CPU each; {len(profiled)} profiled: {profiled_ms:.2f} ms each"
        )
        from ruta.db import db

        if db.engine is not None:
            db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
