"""Whether a worker can send: its outbound provider's settings, checked at start, said once in
its log, by `ruta worker --check`, and recorded in Redis while it runs so the admin shows it
where staff look at cases."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from providers.senders import configuration_problem
from ruta.referrals import outbound_channel

#: A record outlives its worker by at most this (the sweeper loop renews it every minute).
RECORD_SECONDS = 180


def problem(config: Mapping[str, Any]) -> str | None:
    """Why a worker with ``config`` cannot send alerts and notices, or None when it can."""
    provider = outbound_channel(dict(config))
    found = configuration_problem(provider, config)
    return f"outbound SMS ({provider}): {found}" if found else None


def _key(prefix: str, worker: str) -> str:
    return f"{prefix}:worker-readiness:{worker}"


def record(redis: Redis, prefix: str, worker: str, found: str | None) -> None:
    with contextlib.suppress(RedisError):  # the log line and --check still say it
        redis.set(_key(prefix, worker), json.dumps({"problem": found}), ex=RECORD_SECONDS)


def forget(redis: Redis, prefix: str, worker: str) -> None:
    with contextlib.suppress(RedisError):
        redis.delete(_key(prefix, worker))


def problems(redis: Redis, prefix: str) -> list[str]:
    """What the running workers say stops them sending (empty when all can, or none runs)."""
    found: set[str] = set()
    try:
        for key in redis.scan_iter(match=_key(prefix, "*"), count=100):
            raw = redis.get(key)
            said = json.loads(raw)["problem"] if raw else None
            if said:
                found.add(str(said))
    except (RedisError, ValueError, KeyError):
        return []
    return sorted(found)
