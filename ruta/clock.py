"""The time Ruta acts on. Tests move it through ``app.extensions['ruta.clock']``."""

from __future__ import annotations

from datetime import datetime

from flask import current_app, has_app_context

from ruta.models import utcnow


def now() -> datetime:
    if has_app_context():
        clock = current_app.extensions.get("ruta.clock")
        if clock is not None:
            return clock()
    return utcnow()
