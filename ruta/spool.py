"""The spool: inbound messages and delivery reports kept outside the database while it is
unreachable or hung, so that none is lost (as RapidPro's courier spools to disk).

A webhook that cannot reach the database within its deadline writes what it received to a Redis
stream, encrypted with the data key, answers the provider at once (no inline reply), and a worker
later runs each entry through the same path, oldest first, so one person's messages keep their
order; replies then go out through the provider's API. Redis down as well: the webhook answers
503 and the provider retries or falls back, as before.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from redis import Redis

from ruta import crypto

#: At most this many entries are kept (oldest dropped first by Redis): a bound on memory if the
#: database stays away for days; far above what an outage of hours brings.
MAX_ENTRIES = 1_000_000


@dataclass(frozen=True)
class Entry:
    """One thing a provider told us while the database was away."""

    kind: str  # "inbound" (a person's message) or "report" (a delivery report)
    channel: str
    provider_message_id: str | None
    received_at: str  # ISO 8601, UTC
    sender: str | None = None
    text: str | None = None
    status: str | None = None  # a report's status, as ours (MessageStatus value)
    error: str | None = None
    to: str | None = None


def stream(prefix: str) -> str:
    return f"{prefix}:spool"


def keep(redis: Redis, prefix: str, entry: Entry) -> str:
    """Append ``entry``; its id. Raises redis errors when Redis is down too."""
    sealed = crypto.current().encrypt(json.dumps(asdict(entry)))
    entry_id = redis.xadd(stream(prefix), {"m": sealed}, maxlen=MAX_ENTRIES, approximate=True)
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def oldest(redis: Redis, prefix: str, count: int) -> list[tuple[str, Entry]]:
    """Up to ``count`` entries, oldest first."""
    rows: Any = redis.xrange(stream(prefix), count=count)
    found = []
    for entry_id, fields in rows:
        sealed = fields.get(b"m") or fields.get("m")
        plain = json.loads(
            crypto.current().decrypt(sealed.decode() if isinstance(sealed, bytes) else sealed)
        )
        key = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        found.append((key, Entry(**plain)))
    return found


def remove(redis: Redis, prefix: str, entry_id: str) -> None:
    redis.xdel(stream(prefix), entry_id)


def waiting(redis: Redis, prefix: str) -> int:
    return int(redis.xlen(stream(prefix)))


def received_at(entry: Entry) -> datetime:
    return datetime.fromisoformat(entry.received_at)
