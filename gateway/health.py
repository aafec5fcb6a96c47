"""``/healthz``: the process is up. ``/readyz``: database, Redis and migrations are ready."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from ruta.db import db
from ruta.migrate import pending_revision

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    checks: dict[str, str] = {}
    try:
        with db.transaction() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
        pending = pending_revision()
        checks["migrations"] = "ok" if pending is None else f"pending: {pending}"
    except Exception as exc:  # any failure means "not ready", reported by type only
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        current_app.extensions["ruta.redis"].ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"unreachable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values()) and len(checks) == 3
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503
