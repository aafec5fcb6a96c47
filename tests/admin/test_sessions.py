"""Admin sessions end on the server's word: logout, a password or role change, idleness and age
refuse a cookie the browser (or whoever copied it) still holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from admin import accounts as account_ops
from ruta.db import db
from ruta.models import User
from tests.admin.conftest import PASSWORD as PASSWORD_BEFORE
from tests.admin.conftest import Browser, csrf_token, login
from tests.conftest import Clock


@pytest.fixture()
def client(app: Flask) -> Browser:
    return Browser(app)


@pytest.fixture()
def clock(app: Flask) -> Clock:
    app.extensions["ruta.clock"] = Clock(datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
    return app.extensions["ruta.clock"]  # type: ignore[no-any-return]


def opens_admin(client: Any) -> bool:
    response = client.get("/admin/")
    assert response.status_code in (200, 302), response.status_code
    return response.status_code == 200


def same_cookie(app: Flask, client: Browser) -> Browser:
    """Another browser holding a copy of ``client``'s session cookie."""
    cookie = client.client.get_cookie("session")
    assert cookie is not None
    thief = Browser(app)
    thief.client.set_cookie("session", cookie.value)
    return thief


def test_a_cookie_from_before_logout_is_refused_afterwards(
    app: Flask, client: Any, accounts: dict[str, str]
) -> None:
    assert login(client, accounts["admin"]).status_code == 302
    copy = same_cookie(app, client)
    assert opens_admin(copy)
    token = csrf_token(client.get("/admin/").get_data(as_text=True))
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    assert not opens_admin(client)
    assert not opens_admin(copy)
    assert "/admin/login" in copy.get("/admin/").headers["Location"]
    assert login(client, accounts["admin"]).status_code == 302  # logging in again works
    assert opens_admin(client)
    assert not opens_admin(copy)


def test_a_session_idle_past_the_timeout_is_refused(
    app: Flask, client: Any, accounts: dict[str, str], clock: Clock
) -> None:
    login(client, accounts["coordinator"])
    for _ in range(3):  # in use: each request keeps it alive
        clock.now += timedelta(minutes=29)
        assert opens_admin(client)
    copy = same_cookie(app, client)
    clock.now += timedelta(minutes=31)
    assert not opens_admin(client)
    assert not opens_admin(copy)

    app.config["RUTA_ADMIN_IDLE_MINUTES"] = 5  # configurable
    login(client, accounts["coordinator"])
    clock.now += timedelta(minutes=6)
    assert not opens_admin(client)


def test_a_session_in_use_still_ends_at_its_absolute_age(
    app: Flask, client: Any, accounts: dict[str, str], clock: Clock
) -> None:
    login(client, accounts["viewer"])
    started = clock.now
    while clock.now - started < timedelta(hours=11, minutes=40):
        clock.now += timedelta(minutes=20)
        assert opens_admin(client)
    clock.now += timedelta(minutes=20)  # 12 h since logging in, however busy
    assert not opens_admin(client)


def test_a_password_or_role_change_ends_the_accounts_sessions(
    app: Flask, client: Any, accounts: dict[str, str]
) -> None:
    login(client, accounts["coordinator"])
    with db.transaction() as session:
        user = session.scalar(select(User).where(User.email == accounts["coordinator"]))
        assert user is not None
        account_ops.set_password(session, user, "another long passphrase")
    assert not opens_admin(client)

    assert login(client, accounts["coordinator"], "another long passphrase").status_code == 302
    assert opens_admin(client)
    with db.transaction() as session:
        user = session.scalar(select(User).where(User.email == accounts["coordinator"]))
        assert user is not None
        account_ops.set_role(session, user, "viewer")
    assert not opens_admin(client)


def test_the_command_line_changes_end_sessions_too(
    app: Flask, client: Any, accounts: dict[str, str], monkeypatch: Any
) -> None:
    from click.testing import CliRunner

    from cli import main

    for name in ("RUTA_SECRET_KEY", "RUTA_DATA_KEY", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.setenv(name, app.config[name])
    email = accounts["flow_editor"]
    for command, given in (
        (["users", "password", email], "a fresh long passphrase\n"),
        (["users", "role", email, "--role", "viewer"], None),
        (["users", "logout", email], None),
    ):
        password = "a fresh long passphrase" if command[1] != "password" else PASSWORD_BEFORE
        assert login(client, email, password).status_code == 302, command
        assert opens_admin(client)
        result = CliRunner().invoke(main, command, input=given)
        assert result.exit_code == 0, result.output
        assert not opens_admin(client), command
    unknown = CliRunner().invoke(main, ["users", "logout", "nobody@ruta.test"])
    assert unknown.exit_code != 0 and "no account" in unknown.output
