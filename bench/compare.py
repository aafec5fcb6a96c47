"""CPU a message of two versions of Ruta, compared where the machine's drift cannot reach it.

Not a test. ``bench/inbound.py`` measures throughput against a bare endpoint, but on a shared
machine its figures move by a fifth between runs minutes apart: a change worth a few per cent is
lost in them. Here two processes, one on each checkout, each with its own private database,
handle the same stream of webhook requests in process (WSGI, PostgreSQL, no HTTP server, no load
generator; bench/profile_inbound.py builds them), taking turns: 500 messages one, 500 the other,
``--turns`` times, the order swapped every turn. Each turn's CPU comes from
``time.process_time`` (the web's) and the backends' ``/proc`` (PostgreSQL's); each pair of
turns run back to back gives a ratio, and their median is the comparison.

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/compare.py /tmp/before . [--channel ussd] [--turns 40]

Each checkout runs its own code, command line included (``PYTHONPATH``); both need the
databases' server of ``--database-url``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MESSAGES_PER_TURN = 500


def child(root: Path, channel: str, database_url: str, database: str, redis_url: str) -> None:
    """One side: set up, say ``ready``, then handle a turn for every line read on stdin."""
    sys.path[:0] = [str(root / "bench"), str(root)]
    from measure import Backends
    from profile_inbound import (
        CONVERSATION,
        USSD_WALK,
        build_requests,
        prepare_database,
        run,
        run_cli,
        ruta_environment,
    )

    with tempfile.TemporaryDirectory(prefix="ruta-compare-") as tmp:
        with contextlib.redirect_stdout(sys.stderr):
            url = prepare_database(database_url, database)
            env = ruta_environment(url, redis_url, 8731, Path(tmp))
            for step in (
                ("db", "upgrade"),
                ("flows", "publish", "--by", "bench"),
                ("demo", "load"),
            ):
                run_cli(env, *step)
            os.environ.update(env)
            from app import create_app

            app = create_app()
            loaded = sys.modules["app"].__file__ or ""
            if not loaded.startswith(str(root)):
                raise SystemExit(f"{root}: the app was loaded from {loaded}")
            phones = 50
            walk = len(USSD_WALK if channel == "ussd" else CONVERSATION)
            walks = 80 * MESSAGES_PER_TURN // (walk * phones) + 2
            requests = build_requests(channel, phones, walks, env["PUBLIC_BASE_URL"])
            first = walk * phones  # a walk of every phone: contacts exist, caches are warm
            run(app, requests[:first])
            requests = requests[first:]
            backends = Backends(database_url.rsplit("/", 1)[0] + "/" + database)
        print("ready", flush=True)
        for turn, _ in enumerate(sys.stdin):
            part = requests[turn * MESSAGES_PER_TURN : (turn + 1) * MESSAGES_PER_TURN]
            if len(part) < MESSAGES_PER_TURN:
                raise SystemExit("out of requests: fewer turns")
            before, started = backends.sample(), time.process_time()
            run(app, part)
            web = (time.process_time() - started) * 1000 / len(part)
            database_ms = Backends.spent(before, backends.sample()) * 1000 / len(part)
            print(f"{web:.4f} {database_ms:.4f}", flush=True)
        backends.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("before", type=Path, nargs="?", help="a checkout of Ruta (the baseline)")
    parser.add_argument("after", type=Path, nargs="?", help="another checkout (the change)")
    parser.add_argument("--channel", choices=("sms", "ussd"), default="sms")
    parser.add_argument("--turns", type=int, default=40, help="turns each, at most 80")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--child", nargs=2, metavar=("ROOT", "DATABASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        root, database = args.child
        child(Path(root), args.channel, args.database_url, database, args.redis_url)
        return 0
    if args.before is None or args.after is None:
        parser.error("name two checkouts: before and after")
    roots = [args.before.resolve(), args.after.resolve()]
    sides = []
    for index, root in enumerate(roots):
        command = [sys.executable, __file__, "--channel", args.channel]
        command += ["--database-url", args.database_url, "--redis-url", args.redis_url]
        command += ["--child", str(root), f"ruta_compare_{index}"]
        env = {**os.environ, "PYTHONPATH": str(root)}
        sides.append(
            subprocess.Popen(
                command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
        )
    try:
        for side, root in zip(sides, roots, strict=True):
            assert side.stdout is not None
            if side.stdout.readline().strip() != "ready":
                raise SystemExit(f"{root}: did not start")
        figures: list[list[tuple[float, float]]] = [[], []]
        for turn in range(args.turns):
            for index in (0, 1) if turn % 2 == 0 else (1, 0):
                side = sides[index]
                assert side.stdin is not None and side.stdout is not None
                side.stdin.write("go\n")
                side.stdin.flush()
                web, database_ms = map(float, side.stdout.readline().split())
                figures[index].append((web, database_ms))
    finally:
        for side in sides:
            with contextlib.suppress(OSError):
                assert side.stdin is not None
                side.stdin.close()
            side.wait(timeout=60)
    webs = [[web for web, _ in side] for side in figures]
    databases = [[database_ms for _, database_ms in side] for side in figures]
    ratios = sorted(after / before for before, after in zip(webs[0], webs[1], strict=True))
    quarter = len(ratios) // 4
    print(f"{args.channel}, {args.turns} turns of {MESSAGES_PER_TURN} messages each, alternating")
    print("side     web CPU ms (median)  PostgreSQL CPU ms (median)  checkout")
    names = ("before", "after")
    for name, web, database_ms, root in zip(names, webs, databases, roots, strict=True):
        web_ms, db_ms = statistics.median(web), statistics.median(database_ms)
        print(f"{name:8} {web_ms:19.3f}  {db_ms:26.3f}  {root}")
    print(
        f"after/before web CPU: median of the pairs {statistics.median(ratios):.3f}"
        f" (interquartile {ratios[quarter]:.3f}-{ratios[-quarter - 1]:.3f});"
        f" PostgreSQL {statistics.median(databases[1]) / statistics.median(databases[0]):.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
