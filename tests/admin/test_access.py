"""Accounts and access: every admin route walked for every role, CSRF, lockout."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from admin.permissions import PERMISSIONS
from ruta.models import Role
from tests.admin.conftest import PASSWORD, csrf_token, login

#: Values for URL parameters when walking the URL map. Admin routes use only these names;
#: ``reference`` and ``case_id`` come from the ``sample_case`` fixture.
SAMPLES = {
    "key": "main",
    "flow_key": "main",
    "version": "1",
    "other": "1",
    "filename": "admin.css",
    "service_id": "1",
    "organization_id": "1",
    "location_id": "1",
    "municipality_id": "1",
    "focal_point_id": "1",
    "chain_id": "1",
    "agreement_id": "1",
    "user_id": "1",
    "format": "csv",
    "table": "requests",
}
PUBLIC = {"admin_auth.login", "static_admin"}


def admin_rules(app: Flask) -> list[Any]:
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/admin") and rule.endpoint not in PUBLIC
    ]


def url_for_rule(rule: Any) -> str:
    missing = [a for a in rule.arguments if a not in SAMPLES]
    assert not missing, f"add a sample value for {missing} ({rule.rule})"
    return rule.build({a: SAMPLES[a] for a in rule.arguments}, append_unknown=False)[1]


def test_every_admin_route_declares_a_permission(app: Flask) -> None:
    for rule in admin_rules(app):
        view = app.view_functions[rule.endpoint]
        assert getattr(view, "required_permission", None) in PERMISSIONS, rule.endpoint


def test_anonymous_users_never_get_a_page(app: Flask, client: Any) -> None:
    for rule in admin_rules(app):
        url = url_for_rule(rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = client.open(url, method=method)
            assert response.status_code in (302, 400), (method, url, response.status_code)
            if response.status_code == 302:
                assert "/admin/login" in response.headers["Location"]


@pytest.fixture(autouse=True)
def _case_samples(sample_case: dict[str, Any]) -> None:
    from sqlalchemy import select

    from ruta import contacts, questions
    from ruta.db import db
    from ruta.models import Broadcast, DataSharingAgreement, Municipality, Question

    SAMPLES["reference"] = sample_case["reference"]
    SAMPLES["case_id"] = str(sample_case["id"])
    with db.transaction() as session:
        # In the coordinator's country (CR): a broadcast to Upala, the agreement of an
        # organisation with focal points in Costa Rica only.
        upala = session.scalar(select(Municipality.id).where(Municipality.code == "cr-upala"))
        SAMPLES["agreement_id"] = str(
            session.scalar(
                select(DataSharingAgreement.id).where(
                    DataSharingAgreement.reference == "DEMO-ACUERDO-2"
                )
            )
        )
        broadcast = Broadcast(
            title="sample", municipality_id=upala, texts={"es": "Aviso"}, created_by="tests"
        )
        person = contacts.lock_contact(session, "+50688009999")
        question = Question(
            reference=questions.new_reference(session),
            contact_id=person.id,
            channel="twilio",
            language="es",
            country="CR",
            text="?",
        )
        session.add_all([broadcast, question])
        session.flush()
        SAMPLES["broadcast_id"] = str(broadcast.id)
        SAMPLES["question_id"] = str(question.id)


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_each_role_gets_exactly_its_own_pages(
    app: Flask, client: Any, accounts: dict[str, str], role: str
) -> None:
    assert login(client, accounts[role]).status_code == 302
    for rule in admin_rules(app):
        if "GET" not in rule.methods:
            continue
        permission = app.view_functions[rule.endpoint].required_permission
        allowed = Role(role) in PERMISSIONS[permission]
        response = client.get(url_for_rule(rule))
        if allowed:
            assert response.status_code == 200, (role, rule.rule, response.status_code)
        else:
            assert response.status_code == 403, (role, rule.rule, response.status_code)


def test_posts_without_a_csrf_token_are_refused(client: Any, accounts: dict[str, str]) -> None:
    login(client, accounts["admin"])
    assert client.post("/admin/logout").status_code == 400
    assert client.get("/admin/").status_code == 200  # still logged in
    page = client.get("/admin/").get_data(as_text=True)
    assert client.post("/admin/logout", data={"csrf_token": csrf_token(page)}).status_code == 302
    assert client.get("/admin/").status_code == 302


def test_a_login_without_a_csrf_token_is_refused(client: Any, accounts: dict[str, str]) -> None:
    response = client.post("/admin/login", data={"email": accounts["admin"], "password": PASSWORD})
    assert response.status_code == 400


def test_repeated_wrong_passwords_lock_the_account(client: Any, accounts: dict[str, str]) -> None:
    for _ in range(5):
        assert login(client, accounts["viewer"], "wrong password here").status_code == 401
    locked = login(client, accounts["viewer"])  # the right password, but locked now
    assert locked.status_code == 401
    assert client.get("/admin/").status_code == 302
    assert login(client, accounts["admin"]).status_code == 302  # other accounts unaffected


def test_session_cookie_flags(app: Flask, client: Any, accounts: dict[str, str]) -> None:
    response = login(client, accounts["admin"])
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    from app import create_app

    secure = create_app({**app.config, "RUTA_COOKIE_SECURE": True})
    other = secure.test_client()
    assert "Secure" in login(other, accounts["admin"]).headers["Set-Cookie"]


def test_login_redirects_only_inside_the_admin(client: Any, accounts: dict[str, str]) -> None:
    page = client.get("/admin/login?next=//evil.example/x")
    token = csrf_token(page.get_data(as_text=True))
    response = client.post(
        "/admin/login?next=//evil.example/x",
        data={"email": accounts["admin"], "password": PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"].endswith("/admin/")
