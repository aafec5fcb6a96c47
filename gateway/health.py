"""``/healthz``: the process is up. ``/readyz``: database, Redis and migrations are ready."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from ruta.db import db, deadline
from ruta.migrate import pending_revision

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok")


#: /readyz answers within this many seconds, whatever the database or Redis do.
READY_WITHIN = 1.5
#: Checks run here, so a hung one is abandoned (it ends at its own timeout) and not waited for.
_checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")


def _database() -> dict[str, str]:
    with deadline(READY_WITHIN), db.transaction() as session:
        session.execute(text("SELECT 1"))
    pending = pending_revision()
    return {"database": "ok", "migrations": "ok" if pending is None else f"pending: {pending}"}


def _within(check: Callable[[], dict[str, str]], name: str) -> dict[str, str]:
    try:
        return _checks.submit(check).result(timeout=READY_WITHIN)
    except FutureTimeout:
        return {name: f"unreachable: no answer within {READY_WITHIN:g} s"}
    except Exception as exc:  # any failure means "not ready", reported by type only
        return {name: f"unreachable: {type(exc).__name__}"}


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    redis = current_app.extensions["ruta.redis"]
    checks: dict[str, str] = {}
    checks.update(_within(_database, "database"))
    checks.update(_within(lambda: {"redis": "ok" if redis.ping() else "no"}, "redis"))
    ready = all(v == "ok" for v in checks.values()) and len(checks) == 3
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503
