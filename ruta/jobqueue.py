"""The project's RQ queues, by priority, enqueueing that never loses a message, and the hand-over
of committed work to the workers.

Below the gateway, the admin and the workers, which all hand work over through here: jobs are
named by their dotted path ("workers.jobs.send_message"), so nothing here imports the workers
(RQ imports the function in the worker process)."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError
from rq.serializers import JSONSerializer

from ruta.referrals import Work

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
    func: Callable[..., Any] | str,
    *args: Any,
    priority: str = DEFAULT,
    retry: Retry | None = None,
    job_id: str | None = None,
    timeout: int = SEND_TIMEOUT,
) -> bool:
    """Schedule a job (needs a worker with its scheduler); False when Redis is unreachable,
    in which case the sweeper covers it. With ``job_id`` the job is scheduled once: a job of
    that id already there is the same work (True)."""
    queue = Queue(queue_name(prefix, priority), connection=connection, serializer=JSONSerializer)
    try:
        queue.enqueue_at(
            when,
            func,
            *args,
            retry=retry,
            job_timeout=timeout,
            job_id=job_id,
            unique=job_id is not None,
        )
    except DuplicateJobError:
        return True
    except RedisError as exc:
        log.warning("schedule failed, left for the sweeper: %s", type(exc).__name__)
        return False
    return True


def enqueue(
    connection: Redis,
    prefix: str,
    func: Callable[..., Any] | str,
    *args: Any,
    priority: str = DEFAULT,
    retry: Retry | None = None,
    timeout: int = SEND_TIMEOUT,
) -> bool:
    """Enqueue after commit. False when Redis is unreachable: the row stays queued in the
    database and the outbox sweeper hands it over later, so nothing is lost."""
    queue = Queue(queue_name(prefix, priority), connection=connection, serializer=JSONSerializer)
    try:
        # A dotted path is what RQ stores either way; the stubs only admit callables.
        queue.enqueue(
            cast(Any, func), *args, retry=retry, job_timeout=timeout, failure_ttl=7 * 86400
        )
    except RedisError as exc:
        log.warning("enqueue failed, left for the sweeper: %s", type(exc).__name__)
        return False
    return True


#: How long "a job of this kind is queued or running" holds unless its job renews it: a job
#: lost with Redis, or killed with its worker, leaves its work to the sweeper, and after this
#: any new work enqueues another. A running job renews it more often than this.
COALESCE_SECONDS = 60


def _flag(prefix: str, name: str) -> str:
    return f"{prefix}:{name}:active"


def enqueue_coalesced(
    connection: Redis,
    prefix: str,
    name: str,
    func: Callable[..., Any] | str,
    *,
    priority: str = DEFAULT,
    timeout: int = SEND_TIMEOUT,
    force: bool = False,
    args: tuple[Any, ...] = (),
) -> bool:
    """Make sure a ``func`` job (it looks for its work; ``args`` say which) is queued or running,
    enqueueing one only when the flag ``name`` says none is. The job holds the flag while it
    works (``hold``) and releases it (``release``) before it looks for work one last time, so
    work committed before a call here is seen by a job either way. ``force`` (the sweeper, for
    work no job took in minutes) enqueues one whatever the flag says. False when Redis is
    unreachable (the sweeper covers the work)."""
    flag = _flag(prefix, name)
    try:
        if not connection.set(flag, "1", nx=not force, ex=COALESCE_SECONDS):
            return True
    except RedisError as exc:
        log.warning("enqueue failed, left for the sweeper: %s", type(exc).__name__)
        return False
    if enqueue(connection, prefix, func, *args, priority=priority, timeout=timeout):
        return True
    with contextlib.suppress(RedisError):  # else it expires
        connection.delete(flag)
    return False


def hold(connection: Redis, prefix: str, name: str) -> None:
    """A coalesced job at work: new work needs no other job (renewed as it goes)."""
    try:
        connection.set(_flag(prefix, name), "1", ex=COALESCE_SECONDS)
    except RedisError as exc:
        log.warning("coalescing flag not renewed: %s", type(exc).__name__)


def release(connection: Redis, prefix: str, name: str) -> None:
    """A coalesced job stops looking for work: from now on new work enqueues another job."""
    try:
        connection.delete(_flag(prefix, name))
    except RedisError as exc:
        log.warning("coalescing flag not cleared (it expires): %s", type(exc).__name__)


# --- handing committed work over -------------------------------------------------------------

#: Coalescing flags of the jobs that look for their own work.
DRAIN, DEADLINES = "referrals-drain", "deadlines-scan"
#: RQ timeout of the drain and deadline jobs: the drain's time at work, its send window and
#: one provider timeout fit in it (workers/jobs.py).
BATCH_JOB_TIMEOUT = 120
#: Scheduled deadline scans are rounded up to this many seconds: a batch of cases with one
#: tier schedules one scan, and batches a moment apart share it.
DEADLINE_SLOT = 10
#: While the database is still away, a spool drain tries again at these intervals (seconds);
#: the sweeper drains every minute in any case.
DRAIN_RETRY = Retry(max=12, interval=[5, 10, 20, 30, 60])

SEND_MESSAGE = "workers.jobs.send_message"
DRAIN_REFERRALS = "workers.jobs.drain_referrals"
CHECK_DEADLINES = "workers.jobs.check_deadlines"
DRAIN_SPOOL = "workers.spool_jobs.drain_spool"


def _connection() -> tuple[Redis, str]:
    return current_app.extensions["ruta.redis"], current_app.config["RUTA_QUEUE_PREFIX"]


def hand_over(work: Work) -> None:
    """Give committed work to RQ. Whatever Redis refuses stays in the database for the sweeper."""
    if not (work.message_ids or work.outbox_ids or work.deadlines):
        return  # most messages: a menu answered inline
    redis, prefix = _connection()
    for message_id in work.message_ids:
        enqueue(redis, prefix, SEND_MESSAGE, message_id, priority=HIGH, retry=SEND_RETRY)
    if work.outbox_ids:
        kick_referrals()
    schedule_deadlines([when for _case_id, when in work.deadlines])


def drain_flag(slot: int) -> str:
    """The coalescing flag of the drain in ``slot``: 0 the drain new work queues, 1.. its
    helpers while a backlog lasts."""
    return DRAIN if slot == 0 else f"{DRAIN}-{slot}"


def kick_referrals(*, force: bool = False, slot: int = 0) -> bool:
    """A ``drain_referrals`` job queued or at work (on the high queue: before broadcasts);
    ``force``: queue one whatever the flag says (the sweeper, for events left for minutes).
    ``slot`` > 0: a helper, queued by a drain that finds a backlog."""
    redis, prefix = _connection()
    return enqueue_coalesced(
        redis,
        prefix,
        drain_flag(slot),
        DRAIN_REFERRALS,
        priority=HIGH,
        timeout=BATCH_JOB_TIMEOUT,
        force=force,
        args=(slot,) if slot else (),
    )


def schedule_deadlines(moments: list[datetime]) -> None:
    """One deadline scan at each distinct moment (rounded up to DEADLINE_SLOT), scheduled once
    whoever asks; the sweeper's scan covers a schedule Redis lost."""
    redis, prefix = _connection()
    slots = {math.ceil(when.timestamp() / DEADLINE_SLOT) * DEADLINE_SLOT for when in moments}
    for slot in sorted(slots):
        enqueue_at(
            redis,
            prefix,
            datetime.fromtimestamp(slot, UTC),
            CHECK_DEADLINES,
            priority=HIGH,
            job_id=f"{prefix}-deadlines-{slot}",
            timeout=BATCH_JOB_TIMEOUT,
        )


def schedule_drain() -> None:
    """Ask a worker to drain the spool soon (after a webhook kept something in it)."""
    redis, prefix = _connection()
    enqueue(redis, prefix, DRAIN_SPOOL, priority=HIGH, retry=DRAIN_RETRY)
