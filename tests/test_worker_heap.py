"""A `ruta worker` freezes what it loaded before its first job (workers/entry.py): the
collector then walks only what jobs make (docs/benchmarks.md, issue 11)."""

from __future__ import annotations

from flask import Flask

from ruta.jobqueue import queues
from tests.conftest import kill, spawn_worker, wait_for


def test_a_worker_runs_its_jobs_with_its_startup_heap_frozen(app: Flask) -> None:
    connection = app.extensions["ruta.redis"]
    queue = queues(connection, app.config["RUTA_QUEUE_PREFIX"])[0]
    job = queue.enqueue("gc.get_freeze_count")
    process = spawn_worker(app)
    try:
        wait_for(lambda: job.get_status(refresh=True) in ("finished", "failed"), 60)
        assert job.get_status() == "finished", job.exc_info
        # The app, SQLAlchemy's mappers, the providers' SDKs: tens of thousands of objects.
        assert job.return_value() > 10_000
    finally:
        kill(process)
