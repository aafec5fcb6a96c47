"""The Flask application factory. ``gunicorn app:app`` serves the module-level ``app``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask, Request, Response, send_from_directory
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from gateway.lanes import UNAVAILABLE_TEXT, Lanes
from ruta import crypto
from ruta.config import from_environment, require
from ruta.db import db
from ruta.directory import DirectoryCache
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

    crypto.install(crypto.Vault(settings["RUTA_DATA_KEY"], settings["RUTA_LOOKUP_KEYS"]))
    db.init(
        settings["DATABASE_URL"],
        timeout=db_timeout(settings),
        pre_ping=settings.get("RUTA_DB_ROLE") == "worker",
        prepare=settings["RUTA_DB_PREPARE"],
        pool_size=settings["RUTA_DB_POOL_SIZE"],
    )
    app.extensions["ruta.redis"] = connect(settings["REDIS_URL"], settings["RUTA_INSTANCE_DIR"])
    app.extensions["ruta.flows"] = FlowCache(
        session_timeout_minutes=settings["RUTA_SESSION_TIMEOUT_MINUTES"]
    )
    app.extensions["ruta.directory"] = DirectoryCache()

    edge = app.extensions["ruta.edge"] = _edge_app(app)
    app.wsgi_app = _Dispatch(app.wsgi_app, _lanes(edge))  # type: ignore[method-assign]
    if settings["RUTA_TRUST_PROXY"]:
        # One trusted hop: the client address our own proxy appended (login throttling keys
        # on it); whatever the client itself put in X-Forwarded-For is ignored.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=1, x_proto=1, x_host=1
        )

    from admin import init_app as init_admin

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

    _answer_errors(app)
    return app


def _answer_errors(app: Flask) -> None:
    from gateway.fields import BadField

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
        return Response(UNAVAILABLE_TEXT, 503, mimetype="text/plain")


# --- the edge: webhooks and probes, without the admin's machinery ----------------------------

#: What the edge app serves: every path under this prefix, and these.
EDGE_PREFIX = "/webhooks/"
EDGE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class _NoSession(SessionInterface):
    """Providers and probes carry no cookie: no session is read, signed or written."""

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        return None  # Flask then gives the request a null session, refusing any write

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        return None


def _edge_app(app: Flask) -> Flask:
    """The providers' webhooks and the probes as an app of their own: the same configuration
    and extensions (one dict each, shared), none of the admin's request machinery (cookie
    session, CSRF check, Flask-Login's user loading and remember cookie, context processors).
    Every request pays for those hooks even when a view is exempt."""
    from gateway import (
        africastalking_sms,
        delivery,
        health,
        metrics,
        twilio_sms,
        ussd_africastalking,
        ussd_json,
    )

    edge = Flask(
        __name__,
        instance_path=app.instance_path,
        static_folder=None,
        template_folder=None,
    )
    edge.config = app.config
    edge.extensions = app.extensions
    edge.session_interface = _NoSession()
    for blueprint in (
        health.bp,
        metrics.bp,
        twilio_sms.bp,
        africastalking_sms.bp,
        delivery.bp,
        ussd_africastalking.bp,
        ussd_json.bp,
    ):
        edge.register_blueprint(blueprint)
    _answer_errors(edge)
    return edge


def _lanes(edge: Flask) -> Lanes:
    """The webhooks people's messages come through, on the lane; the rest of the edge app as
    it is."""
    from gateway import africastalking_sms, twilio_sms, ussd_africastalking

    return Lanes(
        edge,
        routes={"/webhooks/twilio/sms": twilio_sms.lane},
        token_routes={
            "/webhooks/africastalking/*/sms": africastalking_sms.lane,
            "/webhooks/africastalking/*/ussd": ussd_africastalking.lane,
        },
    )


class _Dispatch:
    """WSGI: the edge's paths to the edge app, everything else to the admin."""

    def __init__(self, admin: Any, edge: Any) -> None:
        self.admin, self.edge = admin, edge

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith(EDGE_PREFIX) or path in EDGE_PATHS:
            return self.edge(environ, start_response)
        return self.admin(environ, start_response)


def __getattr__(name: str) -> Flask:
    # Built on first use, so importing this module (tests, tools) reads no environment.
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(name)
