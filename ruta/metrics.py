"""Counters and histograms kept in Redis, so every process adds to the same figures.

gunicorn runs several web processes and ``ruta worker`` runs on other machines; an in-process
counter would show whichever process answered the scrape. Redis is already shared by all of
them, so figures go into one hash (HINCRBY), and ``/metrics`` (gateway/metrics.py) reads it
back whole. A worker's figures are written as they happen (one pipelined round trip). A web
process adds up its inbound steps in memory and writes them once a second (``FLUSH_SECONDS``,
one round trip for however many messages), and before it answers a scrape: a round trip to
Redis on every message cost more CPU than the rest of the figures' bookkeeping. A Redis that
is down loses figures, never a message: recording swallows its errors.

Labels are only channel, outcome and queue names, checked against ``LABEL_VALUE``: nothing
about a person, a message or a case can become a label.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from flask import current_app, has_app_context
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

#: What a label value may look like: a channel (``twilio``, ``ussd-json``) or an outcome word.
LABEL_VALUE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


@dataclass(frozen=True, eq=False)  # hashed by identity: ``_field``'s cache key, per message
class Spec:
    """One metric: its Prometheus name (without ``_total``), help and label names; a histogram
    has its upper bounds (seconds)."""

    name: str
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()


INBOUND = Spec(
    "ruta_inbound_messages",
    "Inbound messages (SMS) and USSD requests, by channel and outcome (handled, duplicate,"
    " spooled: kept while the database was away, unavailable: a USSD screen said so, error)",
    ("channel", "outcome"),
)
OUTBOUND = Spec(
    "ruta_outbound_messages",
    "Outbound messages by channel and outcome (inline: answered in the webhook; sent: accepted "
    "by the provider; retried, failed, suppressed)",
    ("channel", "outcome"),
)
PROVIDER_ERRORS = Spec(
    "ruta_provider_errors",
    "Errors from the SMS providers' APIs, by channel and outcome (transient, permanent)",
    ("channel", "outcome"),
)
STEP_LATENCY = Spec(
    "ruta_step_latency_seconds",
    "Time to handle one inbound message or USSD request (lock, dedupe, engine step, persist)",
    ("channel",),
    (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
ALERT_HANDOFF = Spec(
    "ruta_alert_handoff_latency_seconds",
    "From a referral's outbox event to the provider accepting its alert to a focal point",
    (),
    (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0),
)
COUNTERS = (INBOUND, OUTBOUND, PROVIDER_ERRORS)
HISTOGRAMS = (STEP_LATENCY, ALERT_HANDOFF)
_BY_NAME = {spec.name: spec for spec in (*COUNTERS, *HISTOGRAMS)}


def hash_key(prefix: str) -> str:
    return f"{prefix}:metrics"


@lru_cache(maxsize=1024)  # a few channels, outcomes and buckets: built once each, not per message
def _field(spec: Spec, values: tuple[str, ...], suffix: str = "") -> str:
    # A value of another shape becomes "other" rather than an error: recording a figure must
    # never turn a handled message into a failed one.
    assert len(values) == len(spec.labels), (spec.name, len(values))
    safe = tuple(v if LABEL_VALUE.match(v) else "other" for v in values)
    return "|".join((spec.name, *safe)) + (f"|{suffix}" if suffix else "")


def _target() -> tuple[Any, str] | None:
    """This app's Redis and hash; None outside an app (a script, a unit of the engine)."""
    if not has_app_context():
        return None
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    redis = app.extensions.get("ruta.redis")
    if redis is None:
        return None
    return redis, hash_key(app.config["RUTA_QUEUE_PREFIX"])


def _send(redis: Any, key: str, increments: Mapping[str, float]) -> None:
    try:
        pipe = redis.pipeline(transaction=False)
        for field, amount in increments.items():
            if isinstance(amount, int):
                pipe.hincrby(key, field, amount)
            else:
                pipe.hincrbyfloat(key, field, amount)
        pipe.execute()
    except RedisError as exc:
        log.warning("metrics not recorded: %s", type(exc).__name__)


def _write(increments: Mapping[str, float]) -> None:
    """One round trip; outside an app nothing is recorded."""
    target = _target()
    if target is not None:
        _send(*target, increments)


#: Longest a web process keeps figures before writing them to Redis.
FLUSH_SECONDS = 1.0


class _Pending:
    """Figures added up in this process, per Redis and hash, written by ``flush``: by a thread
    of their own every ``FLUSH_SECONDS`` while there are any, before a scrape, and at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._figures: dict[tuple[Any, str], dict[str, float]] = {}
        self._pid: int | None = None
        self._wake = threading.Event()

    def add(self, redis: Any, key: str, increments: Mapping[str, float]) -> None:
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked child: its own thread
                self._pid, self._figures = os.getpid(), {}
                threading.Thread(target=self._run, name="ruta-metrics", daemon=True).start()
            figures = self._figures.setdefault((redis, key), {})
            for field, amount in increments.items():
                figures[field] = figures.get(field, 0) + amount
        if not self._wake.is_set():  # set already but for once a second: no lock to take
            self._wake.set()

    def flush(self) -> None:
        with self._lock:
            taken, self._figures = self._figures, {}
        for (redis, key), figures in taken.items():
            _send(redis, key, figures)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(FLUSH_SECONDS)
            self._wake.clear()
            self.flush()


_pending = _Pending()
atexit.register(_pending.flush)


def flush() -> None:
    """Write what this process holds now (before a scrape reads the hash)."""
    _pending.flush()


def _counted(spec: Spec, values: tuple[str, ...], amount: int = 1) -> dict[str, float]:
    return {_field(spec, values): amount}


def _observed(spec: Spec, seconds: float, values: tuple[str, ...]) -> dict[str, float]:
    """Its bucket (not cumulative here; the scrape adds them up), the count and the sum."""
    seconds = max(0.0, seconds)
    bucket = next((b for b in spec.buckets if seconds <= b), float("inf"))
    return {
        _field(spec, values, f"le={bucket}"): 1,
        _field(spec, values, "count"): 1,
        _field(spec, values, "sum"): float(seconds),
    }


@dataclass
class Step:
    """What an adapter says about one inbound message; ``error`` unless it says otherwise."""

    outcome: str = "error"
    replied_inline: bool = False


@contextmanager
def inbound_step(channel: str) -> Iterator[Step]:
    """Count one inbound message by outcome and time it when it is done, whether the block
    returns or raises (written to Redis within ``FLUSH_SECONDS``)."""
    step, started = Step(), time.perf_counter()
    try:
        yield step
    finally:
        increments = {
            **_counted(INBOUND, (channel, step.outcome)),
            **_observed(STEP_LATENCY, time.perf_counter() - started, (channel,)),
        }
        if step.replied_inline:
            increments.update(_counted(OUTBOUND, (channel, "inline")))
        target = _target()
        if target is not None:
            _pending.add(*target, increments)


def outcomes(
    channel: str,
    *,
    sent: int = 0,
    failed: int = 0,
    retried: int = 0,
    suppressed: int = 0,
    permanent_errors: int = 0,
    transient_errors: int = 0,
    alert_raised_at: datetime | None = None,
    now: datetime | None = None,
    handoffs: Iterable[float] = (),
) -> None:
    """What the providers made of outbound messages, in one round trip; with
    ``alert_raised_at`` (an alert's outbox event) the hand-off latency up to ``now``, and with
    ``handoffs`` those of several alerts (seconds each)."""
    increments: dict[str, float] = {}
    for seconds in handoffs:
        for name, amount in _observed(ALERT_HANDOFF, seconds, ()).items():
            increments[name] = increments.get(name, 0) + amount
    for spec, outcome, amount in (
        (OUTBOUND, "sent", sent),
        (OUTBOUND, "failed", failed),
        (OUTBOUND, "retried", retried),
        (OUTBOUND, "suppressed", suppressed),
        (PROVIDER_ERRORS, "permanent", permanent_errors),
        (PROVIDER_ERRORS, "transient", transient_errors),
    ):
        if amount:
            increments.update(_counted(spec, (channel, outcome), int(amount)))
    if alert_raised_at is not None and now is not None:
        increments.update(_observed(ALERT_HANDOFF, (now - alert_raised_at).total_seconds(), ()))
    if increments:
        _write(increments)


@dataclass(frozen=True)
class Stored:
    """One field of the hash, parsed: which metric, its label values, and for a histogram
    which part (``le=0.05``, ``count``, ``sum``)."""

    spec: Spec
    values: tuple[str, ...]
    part: str
    amount: float


def parse(raw: Mapping[bytes, bytes]) -> list[Stored]:
    """The hash as read by HGETALL; fields of unknown metrics (an older release) are skipped."""
    stored = []
    for field_bytes, amount in raw.items():
        name, *rest = field_bytes.decode().split("|")
        spec = _BY_NAME.get(name)
        if spec is None:
            continue
        values, part = tuple(rest[: len(spec.labels)]), "|".join(rest[len(spec.labels) :])
        stored.append(Stored(spec, values, part, float(amount)))
    return stored
