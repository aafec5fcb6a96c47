"""The web admin: server-rendered pages for flows, the directory, routing and cases.

Every asset is served by Ruta itself (no CDN: it must work on a closed network). Sessions are
signed cookies (HttpOnly, SameSite=Lax, Secure unless RUTA_COOKIE_SECURE=0); every form carries a
CSRF token (Flask-WTF).
"""

from __future__ import annotations

from flask import Flask
from flask_login import current_user
from flask_wtf.csrf import CSRFProtect

from admin import (
    account,
    audit_log,
    auth,
    broadcasts,
    cases,
    directory,
    figures,
    flows,
    home,
    i18n,
    questions,
    routing,
)
from admin.permissions import can

csrf = CSRFProtect()


def init_app(app: Flask) -> None:
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = app.config.get("RUTA_COOKIE_SECURE", True)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", 8 * 3600)
    csrf.init_app(app)
    i18n.init_app(app)
    auth.login_manager.init_app(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    # The providers' webhooks are not here: app.py serves them from an app of their own,
    # authenticated by signature or token, without this CSRF machinery.

    @app.context_processor
    def permissions() -> dict[str, object]:
        return {"can": lambda permission: can(current_user, permission)}


SECTIONS = [home, flows, directory, routing, cases, questions, broadcasts, figures, audit_log]
BLUEPRINTS = [auth.bp, account.bp, *(section.bp for section in SECTIONS)]
#: The menu: (permission, endpoint, label), each shown only to roles holding the permission.
NAV_ITEMS = [item for section in SECTIONS for item in section.NAV]
