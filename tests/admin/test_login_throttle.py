"""Login throttling behind a proxy: it keys on the client's real address (one trusted hop, with
``RUTA_TRUST_PROXY``) and locks an account per address, so wrong passwords from elsewhere never
lock the real person out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from tests.admin.conftest import PASSWORD, csrf_token

PROXY = "10.0.0.2"  # our own reverse proxy: every request reaches the app from it
ADMIN_AT = "198.51.100.7"  # where the real admin sits


class Visitor:
    """A browser reaching the app through the proxy, which appends its address to
    X-Forwarded-For; ``claimed`` is what the browser itself put there (anything)."""

    def __init__(self, app: Flask, address: str, claimed: str | None = None) -> None:
        self.app, self.client = app, app.test_client()
        forwarded = f"{claimed}, {address}" if claimed else address
        self.options: dict[str, Any] = {
            "headers": {"X-Forwarded-For": forwarded},
            "environ_base": {"REMOTE_ADDR": PROXY},
        }

    def login(self, email: str, password: str) -> int:
        with self.app.app_context():
            page = self.client.get("/admin/login", **self.options).get_data(as_text=True)
            data = {"email": email, "password": password, "csrf_token": csrf_token(page)}
            return int(self.client.post("/admin/login", data=data, **self.options).status_code)


@pytest.fixture()
def proxied(app: Flask) -> Iterator[Flask]:
    from app import create_app

    behind_proxy = create_app({**app.config, "RUTA_TRUST_PROXY": True})
    behind_proxy.extensions["ruta.redis"].flushdb()
    yield behind_proxy
    behind_proxy.extensions["ruta.redis"].flushdb()


def test_wrong_logins_from_many_addresses_do_not_lock_the_real_admin_out(
    proxied: Flask, accounts: dict[str, str]
) -> None:
    for i in range(40):  # one attacker or many, each request from another address
        assert Visitor(proxied, f"203.0.113.{i}").login(accounts["admin"], "wrong guess") == 401
    assert Visitor(proxied, ADMIN_AT).login(accounts["admin"], PASSWORD) == 302


def test_the_address_throttle_keys_on_the_real_client_not_on_what_it_claims(
    proxied: Flask, accounts: dict[str, str]
) -> None:
    statuses = [
        Visitor(proxied, "203.0.113.9", claimed=f"192.0.2.{i}").login(
            accounts["viewer"], "wrong guess"
        )
        for i in range(31)
    ]
    assert statuses[:30] == [401] * 30 and statuses[30] == 429  # one address, whatever it says
    assert Visitor(proxied, "203.0.113.9").login(accounts["admin"], PASSWORD) == 429
    assert Visitor(proxied, ADMIN_AT).login(accounts["admin"], PASSWORD) == 302


def test_an_account_locks_per_address(proxied: Flask, accounts: dict[str, str]) -> None:
    attacker = Visitor(proxied, "203.0.113.50")
    for _ in range(5):
        assert attacker.login(accounts["admin"], "wrong guess") == 401
    assert attacker.login(accounts["admin"], PASSWORD) == 401  # locked from there
    assert attacker.login(accounts["viewer"], PASSWORD) == 302  # other accounts are not
    assert Visitor(proxied, ADMIN_AT).login(accounts["admin"], PASSWORD) == 302


def test_without_a_trusted_proxy_forwarded_headers_are_ignored(
    app: Flask, accounts: dict[str, str]
) -> None:
    statuses = [
        Visitor(app, f"203.0.113.{i}").login(accounts["viewer"], "wrong guess") for i in range(31)
    ]
    assert statuses[30] == 429  # all from the one address the app sees
