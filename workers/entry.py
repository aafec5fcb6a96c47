"""``ruta worker``: an RQ worker with its scheduler on the project's queues, inside the app."""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
from typing import Any

from flask import Flask
from rq import SimpleWorker, Worker
from rq.job import Job
from rq.queue import Queue
from rq.serializers import JSONSerializer
from rq.worker import BaseWorker

from ruta.db import db
from ruta.jobqueue import queues
from workers import lifeline, readiness
from workers.jobs import sweep

log = logging.getLogger(__name__)

#: How often each worker looks for messages that no job is carrying.
SWEEP_INTERVAL_SECONDS = 60


class RutaWorker(Worker):
    """Forks a work-horse per job; the child must not reuse the parent's database sockets."""

    def main_work_horse(self, job: Job, queue: Queue) -> Any:
        if db.engine is not None:
            db.engine.dispose(close=False)
        return super().main_work_horse(job, queue)


def _sweep_forever(app: Flask, stop: threading.Event, name: str, problem: str | None) -> None:
    connection, prefix = app.extensions["ruta.redis"], app.config["RUTA_QUEUE_PREFIX"]
    readiness.record(connection, prefix, name, problem)
    while not stop.wait(SWEEP_INTERVAL_SECONDS):
        readiness.record(connection, prefix, name, problem)
        with app.app_context():
            try:
                handed = sweep()
                if any(handed.values()):
                    log.info("sweep handed over again: %s", handed)
            except Exception:  # the sweeper must outlive a database or Redis hiccup
                log.exception("outbox sweep failed")


def exit_when_stdin_closes() -> None:
    """Stop (as on SIGTERM: the job at hand finishes) once stdin reaches EOF. `ruta dev` holds
    the other end, so its worker ends with it even when it is killed with no chance to say so."""

    def watch() -> None:
        # The raw descriptor, not sys.stdin: a thread blocked in a buffered read stops the
        # interpreter from exiting cleanly when the worker ends for another reason.
        while os.read(0, 4096):
            pass
        # To the main thread itself: only there does the signal interrupt RQ's blocking wait.
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def run(app: Flask, *, burst: bool = False, fork: bool = False) -> None:
    """Work the queues (high, default, low) with RQ's scheduler and the sweeper.

    By default jobs run in the worker process (``SimpleWorker``): a fork per job re-imports the
    provider SDKs and opens a new database connection each time, which measured ~6 times slower
    (docs/benchmarks.md). ``fork=True`` isolates each job in its own process instead.
    """
    lifeline.install()
    problem = readiness.problem(app.config)
    if problem:
        # Said once here rather than as a traceback per message: sends are not attempted and
        # messages stay queued, so everything goes out once the settings are there.
        log.error("worker not ready: %s; messages stay queued until it is set", problem)
    connection = app.extensions["ruta.redis"]
    stop = threading.Event()
    worker_class: type[BaseWorker] = RutaWorker if fork else SimpleWorker
    with app.app_context():
        worker = worker_class(
            queues(connection, app.config["RUTA_QUEUE_PREFIX"]),
            connection=connection,
            serializer=JSONSerializer,
        )
        sweeper = threading.Thread(
            target=_sweep_forever, args=(app, stop, worker.name, problem), daemon=True
        )
        sweeper.start()
        # Everything loaded so far (the app, SQLAlchemy's mappers, the providers' SDKs) lives
        # as long as the process: out of the collector's sight, a full collection walks only
        # what the jobs made. Under a burst of referrals, 16 % of a worker's samples (py-spy,
        # holding the GIL) were in collections; frozen, its CPU a case went from 3.2 to
        # 2.9-3.0 ms (docs/benchmarks.md).
        gc.freeze()
        try:
            worker.work(with_scheduler=True, burst=burst)
        finally:
            stop.set()
            readiness.forget(connection, app.config["RUTA_QUEUE_PREFIX"], worker.name)
