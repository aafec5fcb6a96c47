"""The project's RQ queues, by priority, and enqueueing that never loses a message."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.serializers import JSONSerializer

log = logging.getLogger(__name__)

HIGH, DEFAULT, LOW = "high", "default", "low"
PRIORITIES = (HIGH, DEFAULT, LOW)
#: Backoff between attempts to hand a message to a provider (seconds).
SEND_RETRY = Retry(max=5, interval=[5, 30, 120, 600, 1800])
#: A provider call that takes longer than this is abandoned and retried.
SEND_TIMEOUT = 60


def queue_name(prefix: str, priority: str) -> str:
    return f"{prefix}-{priority}"


def queues(connection: Redis, prefix: str) -> list[Queue]:
    return [
        Queue(queue_name(prefix, p), connection=connection, serializer=JSONSerializer)
        for p in PRIORITIES
    ]


def enqueue_at(
    connection: Redis,
    prefix: str,
    when: datetime,
    func: Callable[..., Any],
    *args: Any,
    priority: str = DEFAULT,
) -> bool:
    """Schedule a job (needs a worker with its scheduler); False when Redis is unreachable,
    in which case the sweeper's deadline check covers it."""
    queue = Queue(queue_name(prefix, priority), connection=connection, serializer=JSONSerializer)
    try:
        queue.enqueue_at(when, func, *args, job_timeout=SEND_TIMEOUT)
    except RedisError as exc:
        log.warning("schedule failed, left for the sweeper: %s", type(exc).__name__)
        return False
    return True


def enqueue(
    connection: Redis,
    prefix: str,
    func: Callable[..., Any],
    *args: Any,
    priority: str = DEFAULT,
    retry: Retry | None = None,
) -> bool:
    """Enqueue after commit. False when Redis is unreachable: the row stays queued in the
    database and the outbox sweeper hands it over later, so nothing is lost."""
    queue = Queue(queue_name(prefix, priority), connection=connection, serializer=JSONSerializer)
    try:
        queue.enqueue(func, *args, retry=retry, job_timeout=SEND_TIMEOUT, failure_ttl=7 * 86400)
    except RedisError as exc:
        log.warning("enqueue failed, left for the sweeper: %s", type(exc).__name__)
        return False
    return True
