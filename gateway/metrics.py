"""``GET /metrics``: Prometheus text format, for a scraper holding ``RUTA_METRICS_TOKEN``.

Counters and histograms come from Redis (ruta/metrics.py: every web process and worker adds to
the same hash). Queue depths come from RQ and the outbox from the database at scrape time,
because those are the truth and survive restarts. Without a token set the endpoint does not
exist (404): figures about a protection service's traffic are not for anyone who asks.
"""

from __future__ import annotations

import hmac
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, abort, current_app, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from rq import Worker
from sqlalchemy import func, select

from ruta import clock, metrics, spool
from ruta.db import db, deadline
from ruta.jobqueue import queues
from ruta.models import Direction, Message, MessageStatus, OutboxEvent

bp = Blueprint("metrics", __name__)
#: Prometheus text exposition format 0.0.4.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _authorised() -> None:
    token = current_app.config.get("RUTA_METRICS_TOKEN") or ""
    if not token:
        abort(404)
    given = request.headers.get("Authorization")
    if given is None:
        response = Response("401 Unauthorized\n", 401, mimetype="text/plain")
        response.headers["WWW-Authenticate"] = 'Bearer realm="ruta-metrics"'
        abort(response)
    scheme, _, credential = given.partition(" ")
    expected = token.encode()
    # compare_digest even on a wrong scheme, so timing says nothing about the token.
    same = hmac.compare_digest(credential.strip().encode(), expected)
    if scheme.lower() != "bearer" or not same:
        abort(403)


@bp.get("/metrics")
def scrape() -> Response:
    _authorised()
    metrics.flush()  # this process's latest figures; the others' are at most a second old
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RutaCollector(current_app.extensions["ruta.redis"], _prefix()))
    return Response(generate_latest(registry), 200, content_type=CONTENT_TYPE)


def _prefix() -> str:
    return str(current_app.config["RUTA_QUEUE_PREFIX"])


class RutaCollector(Collector):
    """Built per scrape: reads Redis, RQ and the database once each."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def collect(self) -> Iterator[Metric]:
        redis_up = GaugeMetricFamily("ruta_redis_up", "1 when Redis answered this scrape")
        try:
            stored = metrics.parse(self.redis.hgetall(metrics.hash_key(self.prefix)))
            yield from self._queues()
            redis_up.add_metric([], 1)
        except RedisError:
            stored = []
            redis_up.add_metric([], 0)
        yield redis_up
        yield from _counters(stored)
        yield from _histograms(stored)
        yield from _outbox(clock.now())

    def _queues(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "ruta_queue_depth", "Jobs waiting in an RQ queue", labels=["queue"]
        )
        failed = GaugeMetricFamily(
            "ruta_queue_failed_jobs",
            "Jobs in an RQ queue's failed-job registry (kept 7 days)",
            labels=["queue"],
        )
        for queue in queues(self.redis, self.prefix):
            depth.add_metric([queue.name], queue.count)
            failed.add_metric([queue.name], queue.failed_job_registry.count)
        workers = GaugeMetricFamily("ruta_workers", "RQ workers registered in Redis")
        workers.add_metric([], Worker.count(connection=self.redis))
        spooled = GaugeMetricFamily(
            "ruta_spool_waiting",
            "Inbound messages and reports kept in Redis while the database was away, not yet"
            " processed",
        )
        spooled.add_metric([], spool.waiting(self.redis, self.prefix))
        return iter((depth, failed, workers, spooled))


def _counters(stored: Iterable[metrics.Stored]) -> Iterator[Metric]:
    for spec in metrics.COUNTERS:
        family = CounterMetricFamily(spec.name, spec.help, labels=list(spec.labels))
        for item in stored:
            if item.spec is spec:
                family.add_metric(list(item.values), item.amount)
        yield family


def _histograms(stored: Iterable[metrics.Stored]) -> Iterator[Metric]:
    for spec in metrics.HISTOGRAMS:
        parts: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
        for item in stored:
            if item.spec is spec:
                parts[item.values][item.part] = item.amount
        family = HistogramMetricFamily(spec.name, spec.help, labels=list(spec.labels))
        for values, part in sorted(parts.items()):
            running, buckets = 0.0, []
            for bound in (*spec.buckets, float("inf")):
                running += part.get(f"le={bound}", 0.0)
                buckets.append(("+Inf" if bound == float("inf") else str(bound), running))
            family.add_metric(list(values), buckets, part.get("sum", 0.0))
        yield family


#: Seconds the scrape waits for the database's figures.
SCRAPE_DATABASE_WITHIN = 2.0


def _outbox(now: datetime) -> Iterator[Metric]:
    """The transactional outbox and the messages waiting for a worker, from the database."""
    database_up = GaugeMetricFamily("ruta_database_up", "1 when the database answered this scrape")
    try:
        # A hung database must not hang the scrape: it then says the database is down.
        with deadline(SCRAPE_DATABASE_WITHIN), db.transaction() as session:
            events, oldest_event = session.execute(
                select(func.count(OutboxEvent.id), func.min(OutboxEvent.created_at)).where(
                    OutboxEvent.dispatched_at.is_(None)
                )
            ).one()
            messages, oldest_message = session.execute(
                select(func.count(Message.id), func.min(Message.created_at)).where(
                    Message.direction == Direction.OUTBOUND.value,
                    Message.status.in_((MessageStatus.QUEUED.value, MessageStatus.SENDING.value)),
                )
            ).one()
    except Exception:  # any failure means "not answered", reported as a figure, not a 5xx
        database_up.add_metric([], 0)
        yield database_up
        return
    database_up.add_metric([], 1)
    yield database_up
    for name, help_, value in (
        ("ruta_outbox_pending_events", "Referral events not yet dispatched", events),
        (
            "ruta_outbox_oldest_event_age_seconds",
            "Age of the oldest referral event not yet dispatched (0: none)",
            _age(now, oldest_event),
        ),
        ("ruta_outbox_pending_messages", "Outbound messages waiting for a worker", messages),
        (
            "ruta_outbox_oldest_message_age_seconds",
            "Age of the oldest outbound message waiting for a worker (0: none)",
            _age(now, oldest_message),
        ),
    ):
        gauge = GaugeMetricFamily(name, help_)
        gauge.add_metric([], float(value))
        yield gauge


def _age(now: datetime, since: datetime | None) -> float:
    if since is None:
        return 0.0
    if since.tzinfo is None and now.tzinfo is not None:
        since = since.replace(tzinfo=now.tzinfo)  # SQLite's MIN() drops the column's type
    return max(0.0, (now - since).total_seconds())
