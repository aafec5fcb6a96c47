"""The Flask application factory. ``gunicorn app:app`` serves the module-level ``app``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask, Response, send_from_directory
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from ruta import crypto
from ruta.config import from_environment, require
from ruta.db import db
from ruta.flowstore import FlowCache
from ruta.redis_conn import connect

ADMIN_STATIC = Path(__file__).parent / "admin" / "static"
#: Largest request body accepted; Twilio bodies are at most 1600 characters of text.
MAX_CONTENT_LENGTH = 64 * 1024


def db_timeout(settings: dict[str, Any]) -> float:
    """Workers may wait on the database longer than a webhook, which must answer in time."""
    role = str(settings.get("RUTA_DB_ROLE") or "web")
    return float(settings["RUTA_WORKER_DB_TIMEOUT" if role == "worker" else "RUTA_WEB_DB_TIMEOUT"])


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app from the environment, with ``config`` overriding any setting."""
    settings = from_environment()
    settings.update(config or {})
    require(settings, "RUTA_SECRET_KEY", "RUTA_DATA_KEY")

    app = Flask(
        __name__,
        instance_path=settings["RUTA_INSTANCE_DIR"],
        static_folder=None,
        template_folder="admin/templates",
    )
    app.config.update(settings)
    app.config["SECRET_KEY"] = settings["RUTA_SECRET_KEY"]
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
    if settings["RUTA_TRUST_PROXY"]:
        # One trusted hop: the client address our own proxy appended (login throttling keys
        # on it); whatever the client itself put in X-Forwarded-For is ignored.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=1, x_proto=1, x_host=1
        )

    crypto.install(crypto.Vault(settings["RUTA_DATA_KEY"], settings["RUTA_LOOKUP_KEYS"]))
    db.init(
        settings["DATABASE_URL"],
        timeout=db_timeout(settings),
        pre_ping=settings.get("RUTA_DB_ROLE") == "worker",
    )
    app.extensions["ruta.redis"] = connect(settings["REDIS_URL"], settings["RUTA_INSTANCE_DIR"])
    app.extensions["ruta.flows"] = FlowCache(
        session_timeout_minutes=settings["RUTA_SESSION_TIMEOUT_MINUTES"]
    )

    from gateway import (
        africastalking_sms,
        delivery,
        health,
        metrics,
        twilio_sms,
        ussd_africastalking,
        ussd_json,
    )

    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(twilio_sms.bp)
    app.register_blueprint(africastalking_sms.bp)
    app.register_blueprint(delivery.bp)
    app.register_blueprint(ussd_africastalking.bp)
    app.register_blueprint(ussd_json.bp)

    from admin import init_app as init_admin
    from gateway.fields import BadField

    init_admin(app)
    app.add_url_rule(
        "/admin/static/<path:filename>",
        endpoint="static_admin",
        view_func=lambda filename: send_from_directory(ADMIN_STATIC, filename, max_age=3600),
    )

    @app.context_processor
    def navigation() -> dict[str, object]:
        from admin import NAV_ITEMS

        return {"nav_items": NAV_ITEMS}

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        from admin.i18n import error_page

        page = error_page(exc)
        if page is not None:
            return page
        return Response(f"{exc.code} {exc.name}\n", status=exc.code, mimetype="text/plain")

    @app.errorhandler(BadField)
    def bad_field(exc: BadField) -> Response:
        # A provider field of the wrong type or shape: the provider's (or a forger's) mistake.
        return Response(f"{exc}\n", status=400, mimetype="text/plain")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        # Logged with the trace here; the client never sees it.
        logging.getLogger("ruta").exception("unhandled error")
        return Response("Service unavailable, try again later\n", 503, mimetype="text/plain")

    return app


def __getattr__(name: str) -> Flask:
    # Built on first use, so importing this module (tests, tools) reads no environment.
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)
