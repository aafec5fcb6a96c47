"""How long an admin session lives, decided on the server.

The session is a signed cookie, so the server cannot delete a copy of it. Instead the cookie
carries the account's ``session_version`` from login, when it was issued and when it was last
used; a cookie is refused once the account's version has moved on (logout, a password or role
change), once it has gone unused for ``RUTA_ADMIN_IDLE_MINUTES`` or once it is
``RUTA_ADMIN_SESSION_HOURS`` old, however busy.
"""

from __future__ import annotations

from flask import current_app, session

from ruta import clock
from ruta.models import User

VERSION, ISSUED, SEEN = "ruta_session_version", "ruta_session_issued", "ruta_session_seen"
#: Flask-Login's own keys, dropped with ours when a session is refused.
LOGIN_KEYS = ("_user_id", "_fresh", "_id")


def start(user: User) -> None:
    """Stamp the session of a login that just succeeded."""
    now = clock.now().timestamp()
    session[VERSION] = user.session_version
    session[ISSUED] = now
    session[SEEN] = now


def still_valid(user: User) -> bool:
    """Whether this request's session may go on as ``user``; marks it used when it may."""
    now = clock.now().timestamp()
    idle = int(current_app.config.get("RUTA_ADMIN_IDLE_MINUTES", 30)) * 60
    lifetime = int(current_app.config.get("RUTA_ADMIN_SESSION_HOURS", 12)) * 3600
    version, issued, seen = session.get(VERSION), session.get(ISSUED), session.get(SEEN)
    valid = (
        version == user.session_version
        and isinstance(issued, int | float)
        and isinstance(seen, int | float)
        and now - seen < idle
        and now - issued < lifetime
    )
    if valid:
        session[SEEN] = now
    else:
        end()
    return valid


def end() -> None:
    """Forget the login in this cookie (the CSRF token and flashes stay)."""
    for key in (VERSION, ISSUED, SEEN, *LOGIN_KEYS):
        session.pop(key, None)
