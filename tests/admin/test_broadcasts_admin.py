"""Broadcasts in the admin: preview with segments and cost, send, second approval, cancel."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from flows.encoding import to_gsm7
from providers.fake_provider import FakeProviderServer
from ruta import broadcasts, contacts
from ruta.db import db
from ruta.directory import DatabaseServices
from ruta.models import (
    AuditEntry,
    Broadcast,
    Message,
    Municipality,
    Subscription,
    User,
    utcnow,
)
from tests.admin.conftest import csrf_token, login
from tests.conftest import Clock

SUBSCRIBERS = ("+50688220001", "+50688220002", "+50688220003")


@pytest.fixture(autouse=True)
def midday_in_costa_rica(app: Flask) -> None:
    """Outside quiet hours: 12:00 in Costa Rica is 18:00 UTC."""
    app.extensions["ruta.clock"] = Clock(datetime(2026, 11, 24, 18, 0, tzinfo=UTC))


def subscribe(
    numbers: tuple[str, ...] = SUBSCRIBERS, place: str = "cr-upala", language: str = "es"
) -> None:
    now = utcnow()
    with db.transaction() as session:
        municipality = session.scalar(select(Municipality.id).where(Municipality.code == place))
        assert municipality is not None
        for number in numbers:
            person = contacts.lock_contact(session, number, seen_at=now)
            session.add(
                Subscription(
                    contact_id=person.id,
                    municipality_id=municipality,
                    topic="general",
                    language=language,
                )
            )


def create(client: Any, **fields: str) -> Any:
    page = client.get("/admin/broadcasts/new")
    assert page.status_code == 200
    form = {
        "title": "Unidad movil",
        "municipality": "cr-upala",
        "topic": "general",
        "text_es": "La unidad movil de registro visita Upala el jueves de 8 a 14.",
        "text_en": "",
        "csrf_token": csrf_token(page.get_data(as_text=True)),
        **fields,
    }
    return client.post("/admin/broadcasts/new", data=form)


def post(client: Any, url: str) -> Any:
    token = csrf_token(client.get("/admin/broadcasts/").get_data(as_text=True))
    return client.post(url, data={"csrf_token": token})


def latest() -> Broadcast:
    with db.transaction() as session:
        found = session.scalar(select(Broadcast).order_by(Broadcast.id.desc()).limit(1))
        assert found is not None
        return found


def test_preview_send_and_progress(
    app: Flask,
    client: Any,
    accounts: dict[str, str],
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
) -> None:
    subscribe()
    app.config["RUTA_BROADCAST_APPROVAL_OVER"] = 100
    login(client, accounts["coordinator"])
    response = create(client)
    assert response.status_code == 302
    broadcast = latest()
    page = client.get(f"/admin/broadcasts/{broadcast.id}").get_data(as_text=True)
    assert 'id="audience">3<' in page
    assert "GSM-7" in page and ">1<" in page  # one segment
    assert "0.02 USD" in page  # 3 recipients x 1 segment x 0.0075
    assert post(client, f"/admin/broadcasts/{broadcast.id}/send").status_code == 302
    assert latest().status == "scheduled"
    worker()
    sent = [m for m in fake_provider.messages() if m["to"] in SUBSCRIBERS]
    assert sorted(m["to"] for m in sent) == sorted(SUBSCRIBERS)
    assert all("unidad movil" in m["body"] for m in sent)
    progress = client.get(f"/admin/broadcasts/{broadcast.id}/progress").get_json()
    assert progress["counts"].get("sent") == 3 and progress["status"] == "done"


def preview_row(page: str, language: str) -> list[str]:
    row = re.search(rf'<tr data-language="{language}">(.*?)</tr>', page, re.S)
    assert row, f"no preview row for {language}"
    return re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)


def test_every_broadcast_ends_with_how_to_stop_it_counted_in_the_preview(
    client: Any,
    accounts: dict[str, str],
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
) -> None:
    spanish, english = SUBSCRIBERS[:2], SUBSCRIBERS[2:]
    subscribe(spanish)
    subscribe(english, language="en")
    text_es = "La unidad movil de registro visita Upala el jueves de 8 a 14. Traiga un documento."
    text_es = (text_es + " Es gratis." * 10)[:150]  # one SMS alone (GSM-7, 160); two with the line
    text_en = "The mobile registration unit visits Upala on Thursday from 8 to 14."
    login(client, accounts["admin"])
    assert create(client, text_es=text_es, text_en=text_en).status_code == 302
    broadcast = latest()
    page = client.get(f"/admin/broadcasts/{broadcast.id}").get_data(as_text=True)
    es_line, en_line = "Para no recibir mas: BAJA", "To receive no more: STOP"
    _, shown, chars, encoding, segments, in_all, cost = preview_row(page, "es")
    assert shown.endswith(es_line) and int(chars) == len(text_es) + 1 + len(es_line)
    assert (encoding, segments, in_all) == ("GSM-7", "2", "6")
    assert cost.startswith("0.04")  # 3 recipients x 2 segments x 0.0075, rounded
    _, shown, chars, _, segments, _, _ = preview_row(page, "en")
    assert shown.endswith(en_line) and int(chars) == len(text_en) + 1 + len(en_line)
    assert segments == "1"

    assert post(client, f"/admin/broadcasts/{broadcast.id}/send").status_code == 302
    worker()
    sent = {m["to"]: m["body"] for m in fake_provider.messages() if m["to"] in SUBSCRIBERS}
    assert sorted(sent) == sorted(SUBSCRIBERS)
    assert all(sent[n] == f"{text_es}\n{es_line}" for n in spanish)
    assert all(sent[n] == f"{text_en}\n{en_line}" for n in english)


def test_a_big_broadcast_needs_someone_else_to_approve(
    app: Flask,
    client: Any,
    accounts: dict[str, str],
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
) -> None:
    subscribe()
    app.config["RUTA_BROADCAST_APPROVAL_OVER"] = 2
    login(client, accounts["coordinator"])
    create(client)
    broadcast = latest()
    post(client, f"/admin/broadcasts/{broadcast.id}/send")
    assert latest().status == "awaiting_approval"
    worker()
    assert fake_provider.messages() == []
    assert post(client, f"/admin/broadcasts/{broadcast.id}/approve").status_code == 403
    login(client, accounts["admin"])
    assert post(client, f"/admin/broadcasts/{broadcast.id}/approve").status_code == 302
    approved = latest()
    assert approved.status in ("scheduled", "sending", "done")
    assert approved.approved_by == accounts["admin"]
    worker()
    assert len([m for m in fake_provider.messages() if m["to"] in SUBSCRIBERS]) == 3
    with db.transaction() as session:
        actions = set(session.scalars(select(AuditEntry.action)))
    assert {"broadcast.create", "broadcast.submit", "broadcast.approve"} <= actions


def test_cancel_before_it_goes(
    client: Any,
    accounts: dict[str, str],
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
) -> None:
    subscribe()
    login(client, accounts["admin"])
    create(client)
    broadcast = latest()
    assert post(client, f"/admin/broadcasts/{broadcast.id}/cancel").status_code == 302
    assert latest().status == "cancelled"
    worker()
    assert fake_provider.messages() == []


def test_bad_forms_and_permissions(client: Any, accounts: dict[str, str]) -> None:
    login(client, accounts["coordinator"])
    bad = create(client, title="", text_es="")
    assert bad.status_code == 400
    page = bad.get_data(as_text=True)
    assert "A title is required" in page and "Write the text" in page
    too_long = create(client, text_es="x" * 500)
    assert too_long.status_code == 400
    login(client, accounts["viewer"])
    assert client.get("/admin/broadcasts/").status_code == 200
    assert client.get("/admin/broadcasts/new").status_code == 403


OWN_PHONE = "+50688997766"


def set_phone(email: str, phone: str | None) -> None:
    with db.transaction() as session:
        user = session.scalar(select(User).where(User.email == email))
        assert user is not None
        user.phone = phone


def test_a_test_send_goes_to_the_senders_phone_only_and_is_not_counted(
    client: Any,
    accounts: dict[str, str],
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
) -> None:
    subscribe()
    login(client, accounts["coordinator"])
    create(client)
    broadcast = latest()
    page = client.get(f"/admin/broadcasts/{broadcast.id}").get_data(as_text=True)
    assert 'id="no-phone"' in page and 'href="/admin/account"' in page  # where to set it
    assert 'id="send-test"' not in page
    refused = post(client, f"/admin/broadcasts/{broadcast.id}/test")
    assert "Add your phone" in client.get(refused.headers["Location"]).get_data(as_text=True)
    worker()
    assert fake_provider.messages() == []

    set_phone(accounts["coordinator"], OWN_PHONE)
    page = client.get(f"/admin/broadcasts/{broadcast.id}").get_data(as_text=True)
    assert 'id="send-test"' in page and "7766" in page and OWN_PHONE not in page
    sent = post(client, f"/admin/broadcasts/{broadcast.id}/test")
    assert "not counted" in client.get(sent.headers["Location"]).get_data(as_text=True)
    worker()
    [test] = fake_provider.messages()
    assert test["to"] == OWN_PHONE
    assert test["body"] == broadcasts.text_for(latest(), "es")  # as subscribers get it
    with db.transaction() as session:
        [stored] = session.scalars(select(Message).where(Message.broadcast_id == broadcast.id))
        assert (stored.purpose, stored.status) == ("broadcast_test", "sent")
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "broadcast.test"))
        assert entry is not None and entry.detail["message_id"] == stored.id
        assert broadcasts.progress(session, broadcast.id)["total"] == 0  # not in the ledger
    assert latest().status == "draft"  # the broadcast itself has not gone anywhere
    page = client.get(f"/admin/broadcasts/{broadcast.id}").get_data(as_text=True)
    assert 'id="audience">3<' in page  # the audience is the subscribers, not the tester
    assert 'id="test-sends"' in page

    assert post(client, f"/admin/broadcasts/{broadcast.id}/send").status_code == 302
    worker()
    to = sorted(m["to"] for m in fake_provider.messages())
    assert to == sorted([OWN_PHONE, *SUBSCRIBERS])  # the real send: the subscribers only
    with db.transaction() as session:
        done = session.get(Broadcast, broadcast.id)
        assert done is not None and done.recipients_total == 3
        assert broadcasts.progress(session, broadcast.id)["sent"] == 3


def test_test_sends_are_limited_and_need_the_send_permission(
    client: Any,
    accounts: dict[str, str],
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
) -> None:
    set_phone(accounts["admin"], OWN_PHONE)
    set_phone(accounts["viewer"], OWN_PHONE)
    login(client, accounts["admin"])
    create(client)
    broadcast = latest()
    for _ in range(broadcasts.MAX_SAMPLES):
        post(client, f"/admin/broadcasts/{broadcast.id}/test")
    over = post(client, f"/admin/broadcasts/{broadcast.id}/test")
    assert "test sends already" in client.get(over.headers["Location"]).get_data(as_text=True)
    worker()
    assert len(fake_provider.messages()) == broadcasts.MAX_SAMPLES
    login(client, accounts["viewer"])
    token = csrf_token(client.get("/admin/broadcasts/").get_data(as_text=True))
    viewer = client.post(f"/admin/broadcasts/{broadcast.id}/test", data={"csrf_token": token})
    assert viewer.status_code == 403


ACCENTED = "Atención: la unidad móvil visitará Upala el jueves. Traiga su identificación, ¿sí?"


def test_the_version_without_accents_shows_its_cost_and_is_one_click(
    client: Any, accounts: dict[str, str]
) -> None:
    subscribe()
    login(client, accounts["coordinator"])
    create(client, text_es=ACCENTED * 2)  # 166 characters: UCS-2, three SMS with the stop line
    broadcast = latest()
    page = client.get(f"/admin/broadcasts/{broadcast.id}").get_data(as_text=True)
    _, _, _, encoding, segments, in_all, _ = preview_row(page, "es")
    assert (encoding, segments, in_all) == ("UCS-2", "3", "9")
    plain = re.search(r'<table id="plain-preview">(.*?)</table>', page, re.S)
    assert plain is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", plain.group(1), re.S)
    assert "Atencion: la unidad movil visitara" in cells[1] and "¿si?" in cells[1]
    assert cells[2] == "GSM-7" and cells[3].startswith("2 ") and cells[4].startswith("6 ")
    assert post(client, f"/admin/broadcasts/{broadcast.id}/plain").status_code == 302
    assert latest().texts["es"] == to_gsm7(ACCENTED * 2)
    page = client.get(f"/admin/broadcasts/{broadcast.id}").get_data(as_text=True)
    assert 'id="plain-preview"' not in page  # nothing left to drop
    _, _, _, encoding, segments, _, _ = preview_row(page, "es")
    assert (encoding, segments) == ("GSM-7", "2")
    with db.transaction() as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "broadcast.plain"))
        assert entry is not None
        assert entry.detail["segments_before"] == {"es": 3}
        assert entry.detail["segments_after"] == {"es": 2}
    post(client, f"/admin/broadcasts/{broadcast.id}/send")
    again = post(client, f"/admin/broadcasts/{broadcast.id}/plain")
    assert "Only a draft" in client.get(again.headers["Location"]).get_data(as_text=True)


def test_topics_are_named_as_people_chose_them_by_sms(
    app: Flask, client: Any, accounts: dict[str, str]
) -> None:
    app.config["RUTA_ADMIN_LANGUAGE"] = "es"
    try:
        login(client, accounts["coordinator"])
        form = client.get("/admin/broadcasts/new").get_data(as_text=True)
        with db.transaction() as session:
            menu = DatabaseServices(session, channel="twilio", contact_id=None).alert_topics("es")
        options = re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', form)
        topics = [(v, label) for v, label in options if v in {c.value for c in menu}]
        assert topics == [(c.value, c.label) for c in menu]
        assert ("general", "Todo") in topics
        assert create(client, topic="general").status_code == 302
        page = client.get(f"/admin/broadcasts/{latest().id}").get_data(as_text=True)
        assert '<span id="broadcast-topic">Todo</span>' in page
        assert create(client, topic="no-such-topic").status_code == 400
    finally:
        app.config["RUTA_ADMIN_LANGUAGE"] = "en"


def test_a_coordinator_cannot_test_or_change_another_scopes_broadcast(
    client: Any,
    accounts: dict[str, str],
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
) -> None:
    set_phone(accounts["coordinator"], OWN_PHONE)
    login(client, accounts["admin"])
    create(client, municipality="", text_es="Atención: aviso para todos los municipios.")
    everywhere = latest()  # to every country: the admins' alone
    login(client, accounts["coordinator"])
    assert post(client, f"/admin/broadcasts/{everywhere.id}/test").status_code == 404
    assert post(client, f"/admin/broadcasts/{everywhere.id}/plain").status_code == 404
    worker()
    assert fake_provider.messages() == []
    assert latest().texts["es"] == "Atención: aviso para todos los municipios."


def test_a_schedule_is_written_and_shown_in_the_senders_own_time(
    client: Any, accounts: dict[str, str]
) -> None:
    """Coordinators think in their own clock: 09:00 typed in Costa Rica is 15:00 UTC, and a
    user who chose Panama's zone (UTC-5) gets 14:00 UTC for the same words."""
    login(client, accounts["coordinator"])
    form = client.get("/admin/broadcasts/new").get_data(as_text=True)
    assert "America/Costa_Rica" in form and "(UTC, optional)" not in form
    assert create(client, scheduled_at="2026-11-26T09:00").status_code == 302
    stored = latest().scheduled_at
    assert stored is not None and (stored.day, stored.hour, stored.minute) == (26, 15, 0)
    shown = client.get(f"/admin/broadcasts/{latest().id}").get_data(as_text=True)
    assert 'datetime="2026-11-26T15:00:00+00:00"' in shown and "09:00" in shown

    token = csrf_token(client.get("/admin/account").get_data(as_text=True))
    saved = client.post(
        "/admin/account",
        data={"language": "es", "time_zone": "America/Panama", "csrf_token": token},
    )
    assert saved.status_code == 302
    refused = create(client, scheduled_at="jueves", title="Otra")
    assert refused.status_code == 400 and 'value="jueves"' in refused.get_data(as_text=True)
    assert create(client, scheduled_at="2026-11-26T09:00", title="Otra").status_code == 302
    stored = latest().scheduled_at
    assert stored is not None and (stored.day, stored.hour, stored.minute) == (26, 14, 0)
