"""The login form answers any input with a page or a redirect inside the admin, never a 5xx."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from ruta.db import db
from ruta.models import User
from tests.admin.conftest import PASSWORD, csrf_token

NUL = "\x00"
hostile = st.sampled_from(
    [
        "",
        NUL,
        "\r\nSet-Cookie: x=y",
        "/admin/\r\nLocation: https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/admin",
        "/admin/../../x",
        "a" * 3000,
        "%0d%0a",
    ]
)
anything = st.text(max_size=40)


def attempt(app: Flask, email: str, password: str, next_: str | None, csrf: bool) -> Any:
    """One login from a fresh browser, with throttling and lockout reset so each attempt counts."""
    app.extensions["ruta.redis"].flushdb()
    with db.transaction() as session:
        session.execute(update(User).values(failed_logins=0, locked_until=None))
    client = app.test_client()
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    return client.post(
        "/admin/login",
        query_string={"next": next_} if next_ is not None else None,
        data={"email": email, "password": password, "csrf_token": token if csrf else "x"},
    )


@settings(
    max_examples=25,
    deadline=None,  # argon2 sets the pace; nothing here is about time
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    email=st.one_of(st.just("admin@ruta.test"), hostile, anything),
    password=st.one_of(st.just(PASSWORD), hostile, anything),
    next_=st.one_of(st.none(), st.just("/admin/cases/"), hostile, anything),
    csrf=st.booleans(),
)
@example(email="admin@ruta.test", password=PASSWORD, next_="/admin/\r\nX-Evil: 1", csrf=True)
@example(email=f"admin@ruta.test{NUL}", password=PASSWORD, next_=None, csrf=True)
@example(email="admin@ruta.test", password=f"x{NUL}", next_=None, csrf=True)
def test_login_never_fails_with_a_5xx(
    app: Flask,
    accounts: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    email: str,
    password: str,
    next_: str | None,
    csrf: bool,
) -> None:
    caplog.set_level(logging.WARNING)
    response = attempt(app, email, password, next_, csrf)
    assert response.status_code < 500, response.data
    assert b"Traceback" not in response.data
    if response.status_code in (301, 302, 303):
        location = response.headers["Location"]
        assert location.startswith("/admin") and "\r" not in location and "\n" not in location
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize(
    "next_",
    [
        "/admin/\r\nX-Evil: 1",
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/admin",
        "/administrator",
        "/admin\\..\\x",
    ],
)
def test_an_unsafe_next_goes_to_the_dashboard(
    app: Flask, accounts: dict[str, str], next_: str
) -> None:
    response = attempt(app, "admin@ruta.test", PASSWORD, next_, True)
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"


def test_a_safe_next_is_followed(app: Flask, accounts: dict[str, str]) -> None:
    response = attempt(app, "admin@ruta.test", PASSWORD, "/admin/cases/?status=new", True)
    assert response.headers["Location"] == "/admin/cases/?status=new"
