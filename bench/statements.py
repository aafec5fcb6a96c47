"""Every database round trip of one inbound message, listed: a phone walks the benchmark's
conversation (SMS over the signed Twilio webhook, or the USSD walk over Africa's Talking) in
one process against a fresh PostgreSQL database, and each round trip the request makes is printed
under its message, numbered, with every statement it carried, BEGIN and COMMIT included (the
counting of bench/measure.py: statements sent together in psycopg's pipeline mode are one).

    .venv/bin/python bench/statements.py --database-url postgresql://postgres@127.0.0.1:5432/bench

Not a test, not a timing: a list to read. The walk is run twice; the second (warm caches, an
existing contact) is what is printed, as it is what a steady stream of messages looks like.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from inbound import (
    ACCOUNT_SID,
    CONVERSATION,
    FROM_NUMBER,
    REPO,
    TWILIO_TOKEN,
    USSD_PATH,
    USSD_WALK,
    WEBHOOK_PATH,
    prepare_database,
    run_cli,
    ruta_environment,
)


def shorten(sql: str) -> str:
    sql = " ".join(sql.split())
    sql = re.sub(r"SELECT (.{60}).*? FROM", r"SELECT \1... FROM", sql)
    sql = re.sub(r"RETURNING (.{30}).*$", r"RETURNING \1...", sql)
    sql = re.sub(r"VALUES \(.*?\)( RETURNING|$)", r"VALUES (...)\1", sql)
    return sql[:220]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/bench")
    parser.add_argument("--bench-database", default="bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--channel", choices=("sms", "ussd"), default="sms")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ruta-statements-") as tmp:
        url = prepare_database(args.database_url, args.bench_database)
        env = ruta_environment(url, args.redis_url, 8731, Path(tmp))
        for step in (("db", "upgrade"), ("flows", "publish", "--by", "bench"), ("demo", "load")):
            run_cli(env, *step)
        os.environ.update(env)
        sys.path.insert(0, str(REPO))
        from measure import count_round_trips
        from twilio.request_validator import RequestValidator

        from app import create_app

        lines: list[str] = []
        trips = [0]

        def round_trip(sent: list[str]) -> None:
            trips[0] += 1
            # Several statements in one query string (ruta/sql.py): one line each; literals
            # (lookup hashes, encrypted tokens, times) shown as '...'.
            statements = [
                re.sub(r"'(?:[^']|'')*'", "'...'", part)
                for sql in sent
                for part in sql.split(";\n")
            ]
            for number, sql in enumerate(statements):
                mark = f"{trips[0]:3d}." if number == 0 else "    "
                lines.append(f"{mark} {shorten(sql)}")

        count_round_trips(round_trip)
        app = create_app()
        client = app.test_client()
        validator = RequestValidator(TWILIO_TOKEN)
        base = env["PUBLIC_BASE_URL"]
        for walk in range(2):
            steps = USSD_WALK if args.channel == "ussd" else CONVERSATION
            for seq, text in enumerate(steps):
                lines.clear()
                trips[0] = 0
                if args.channel == "ussd":
                    form = {
                        "sessionId": f"ATUid_statements_{walk}",
                        "serviceCode": "*123#",
                        "phoneNumber": f"+506880099{walk:02d}",
                        "networkCode": "71201",
                        "text": text,
                    }
                    response = client.post(USSD_PATH, data=form)
                else:
                    params = {
                        "MessageSid": f"SM{walk:016x}{seq:016x}",
                        "AccountSid": ACCOUNT_SID,
                        "From": "+50688009999",
                        "To": FROM_NUMBER,
                        "Body": text,
                        "NumMedia": "0",
                    }
                    signature = validator.compute_signature(base + WEBHOOK_PATH, params)
                    response = client.post(
                        WEBHOOK_PATH,
                        data=urlencode(params),
                        headers={
                            "X-Twilio-Signature": signature,
                            "Content-Type": "application/x-www-form-urlencoded",
                        },
                    )
                if walk == 1:
                    print(f"\n{text!r} -> HTTP {response.status_code}: {trips[0]} round trips")
                    for line in lines:
                        print(f"  {line}")
        from ruta.db import db

        if db.engine is not None:
            db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
