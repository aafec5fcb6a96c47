"""Logging in and out. Failed logins are throttled per address and lock an account per address
(``admin.throttle``), so guessing is slow from one place and from many, and nobody can lock the
real person out from elsewhere. Sessions end on the server's word (``admin.sessions``)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length, Regexp

from admin import sessions
from admin.accounts import authenticate, end_sessions
from admin.audit import audit
from admin.permissions import requires
from admin.throttle import LoginThrottle
from ruta import clock
from ruta.db import db
from ruta.models import User

bp = Blueprint("admin_auth", __name__, url_prefix="/admin")
login_manager = LoginManager()
login_manager.login_view = "admin_auth.login"


@dataclass
class AdminUser(UserMixin):
    """The logged-in account, detached from any database session."""

    id: int
    email: str
    role: str
    country: str | None
    focal_point_id: int | None
    language: str | None = None
    time_zone: str | None = None

    @classmethod
    def of(cls, user: User) -> AdminUser:
        return cls(
            user.id,
            user.email,
            user.role,
            user.country,
            user.focal_point_id,
            user.language,
            user.time_zone,
        )


@login_manager.user_loader
def load_user(user_id: str) -> AdminUser | None:
    with db.transaction() as session:
        user = session.get(User, int(user_id)) if user_id.isdigit() else None
        if user is None or not user.active or not sessions.still_valid(user):
            return None
        return AdminUser.of(user)


#: No control characters: PostgreSQL refuses NUL, and nobody types the others.
PRINTABLE = r"\A[^\x00-\x1f\x7f]*\Z"


class LoginForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=200), Regexp(PRINTABLE)])
    password = PasswordField(
        _l("Password"), validators=[DataRequired(), Length(max=1024), Regexp(PRINTABLE)]
    )


def safe_next(target: str) -> str | None:
    """``target`` if it is a path inside the admin on this host, else None. No scheme or host
    (an open redirect), no backslash (browsers read ``/\\host`` as ``//host``), no control
    character (a header would be split)."""
    if any(ch == "\\" or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target if parts.path == "/admin" or parts.path.startswith("/admin/") else None


def _throttle() -> LoginThrottle:
    return LoginThrottle(
        current_app.extensions["ruta.redis"],
        current_app.config["RUTA_QUEUE_PREFIX"],
        request.remote_addr,
    )


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    form = LoginForm()
    if request.method == "POST":
        throttle = _throttle()
        if throttle.address_exceeded():
            return render_template(
                "admin/login.html",
                form=form,
                error=_("Too many attempts. Wait a few minutes and try again."),
            ), 429
        if form.validate_on_submit():
            email, user = str(form.email.data), None
            if not throttle.account_locked(email):
                with db.transaction() as session:
                    user = authenticate(
                        session,
                        email,
                        str(form.password.data),
                        clock.now(),
                        lock_account=not throttle.available,
                    )
                    if user is not None:
                        login_user(AdminUser.of(user))
                        sessions.start(user)
                        audit(session, "login", "user", user.id)
                if user is None:
                    throttle.failed(email)
                else:
                    throttle.succeeded(email)
            if user is not None:
                target = safe_next(request.args.get("next", ""))
                return redirect(target or url_for("admin_home.dashboard"))
        return (
            render_template(
                "admin/login.html",
                form=form,
                error=_("Wrong email or password, or the account is locked."),
            ),
            401,
        )
    return render_template("admin/login.html", form=form, error=None)


@bp.post("/logout")
@requires("dashboard")
def logout() -> ResponseReturnValue:
    with db.transaction() as session:
        user = session.get(User, int(current_user.id))
        if user is not None:
            end_sessions(user)  # a copy of this cookie must not outlive the logout
            audit(session, "logout", "user", user.id)
    logout_user()
    sessions.end()
    flash(_("Logged out."))
    return redirect(url_for("admin_auth.login"))


def is_logged_in() -> bool:
    return bool(current_user.is_authenticated)
