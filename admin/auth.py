"""Logging in and out. Failed logins lock the account (see ``accounts``) and are throttled per
address in Redis, so guessing is slow from one place and from many."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from redis.exceptions import RedisError
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length, Regexp

from admin.accounts import authenticate
from admin.audit import audit
from admin.permissions import requires
from ruta import clock
from ruta.db import db
from ruta.models import User

bp = Blueprint("admin_auth", __name__, url_prefix="/admin")
login_manager = LoginManager()
login_manager.login_view = "admin_auth.login"
#: Login attempts one address may make in a window.
ATTEMPTS_PER_WINDOW, WINDOW_SECONDS = 30, 600


@dataclass
class AdminUser(UserMixin):
    """The logged-in account, detached from any database session."""

    id: int
    email: str
    role: str
    country: str | None
    focal_point_id: int | None

    @classmethod
    def of(cls, user: User) -> AdminUser:
        return cls(user.id, user.email, user.role, user.country, user.focal_point_id)


@login_manager.user_loader
def load_user(user_id: str) -> AdminUser | None:
    with db.transaction() as session:
        user = session.get(User, int(user_id)) if user_id.isdigit() else None
        return AdminUser.of(user) if user is not None and user.active else None


#: No control characters: PostgreSQL refuses NUL, and nobody types the others.
PRINTABLE = r"\A[^\x00-\x1f\x7f]*\Z"


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=200), Regexp(PRINTABLE)])
    password = PasswordField(
        "Password", validators=[DataRequired(), Length(max=1024), Regexp(PRINTABLE)]
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


def _throttled() -> bool:
    key = f"{current_app.config['RUTA_QUEUE_PREFIX']}:login:{request.remote_addr}"
    try:
        redis: Any = current_app.extensions["ruta.redis"]
        attempts = redis.incr(key)
        if attempts == 1:
            redis.expire(key, WINDOW_SECONDS)
        return int(attempts) > ATTEMPTS_PER_WINDOW
    except RedisError:
        return False  # the account lockout still holds without Redis


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    form = LoginForm()
    if request.method == "POST":
        if _throttled():
            return render_template("admin/login.html", form=form, error="too many attempts"), 429
        if form.validate_on_submit():
            with db.transaction() as session:
                user = authenticate(session, form.email.data, form.password.data, clock.now())
                if user is not None:
                    login_user(AdminUser.of(user))
                    audit(session, "login", "user", user.id)
            if user is not None:
                target = safe_next(request.args.get("next", ""))
                return redirect(target or url_for("admin_home.dashboard"))
        return (
            render_template(
                "admin/login.html", form=form, error="wrong email or password, or account locked"
            ),
            401,
        )
    return render_template("admin/login.html", form=form, error=None)


@bp.post("/logout")
@requires("dashboard")
def logout() -> ResponseReturnValue:
    logout_user()
    flash("Logged out.")
    return redirect(url_for("admin_auth.login"))


def is_logged_in() -> bool:
    return bool(current_user.is_authenticated)
