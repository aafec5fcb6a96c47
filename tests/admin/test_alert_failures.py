"""Failures are visible and acted on: a provider that refuses every send. The case page shows each
alert's state with its reason, and a case whose alerts at its position all failed moves on."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import select

from providers.fake_provider import FakeProviderServer
from ruta.db import db
from ruta.models import Message, MessagePurpose
from tests.admin.conftest import login
from tests.conftest import (
    TwilioPhone,
    case_by_reference,
    case_events,
    kill,
    spawn_worker,
    wait_for,
)
from tests.test_referrals import _run_scheduled_now, ask_for_help
from workers.jobs import MAX_SEND_ATTEMPTS

CHAIN = (  # Upala's health chain in the demo data: (focal point, organisation)
    ("Punto focal Upala (demo)", "Municipalidad (demo)"),
    ("Respaldo Upala (demo)", "Red Comunitaria Ejemplo"),
    ("Coordinacion nacional CR (demo)", "Municipalidad (demo)"),
)
ROW = re.compile(r'<tr class="alert" data-state="([a-z]+)">(.*?)</tr>', re.S)


def alert_rows(client: Any, reference: str) -> list[tuple[str, str]]:
    """(state, the row's text) for each alert on the case page, oldest first."""
    page = client.get(f"/admin/cases/{reference}")
    assert page.status_code == 200
    rows = ROW.findall(page.get_data(as_text=True))
    return [(state, html.unescape(re.sub(r"<[^>]+>", " ", cells))) for state, cells in rows]


def alert_messages() -> list[Message]:
    with db.transaction() as session:
        found = list(
            session.scalars(
                select(Message)
                .where(Message.purpose == MessagePurpose.ALERT.value)
                .order_by(Message.id)
            )
        )
        session.expunge_all()
        return found


def test_a_provider_that_refuses_every_send_moves_the_case_to_overdue(
    app: Flask,
    client: Any,
    accounts: dict[str, str],
    phone: TwilioPhone,
    fake_provider: FakeProviderServer,
) -> None:
    fake_provider.refuse_every_send("twilio", 400, 21612)  # "not reachable": permanent
    reference = ask_for_help(phone)
    process = spawn_worker(app)
    try:
        wait_for(lambda: case_by_reference(reference).overdue and len(alert_messages()) == 3, 60)
        wait_for(lambda: all(m.status == "failed" for m in alert_messages()), 30)
        # The last failure's escalation (the "overdue" event) commits after the message's state.
        wait_for(lambda: "overdue" in case_events(reference), 30)
    finally:
        kill(process)
    assert fake_provider.messages() == []
    case = case_by_reference(reference)
    assert case.overdue and case.chain_position == len(CHAIN) - 1
    assert case_events(reference).count("escalated") == 2 and "overdue" in case_events(reference)

    login(client, accounts["admin"])
    rows = alert_rows(client, reference)
    assert [state for state, _ in rows] == ["failed"] * 3
    for (name, organisation), (_, row) in zip(CHAIN, rows, strict=True):
        assert name in row and organisation in row
        assert "21612" in row and "not reachable" in row
    page = client.get(f"/admin/cases/{reference}").get_data(as_text=True)
    assert re.search(r'id="case-overdue"><strong class="error">yes', page)
    assert "no alert reached them" in page


def test_alerts_that_keep_failing_for_now_fail_after_the_last_attempt_and_move_on(
    app: Flask,
    client: Any,
    accounts: dict[str, str],
    phone: TwilioPhone,
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
) -> None:
    fake_provider.refuse_every_send("twilio", 500)  # transient-looking, for ever
    reference = ask_for_help(phone)
    for _ in range(len(CHAIN) * (MAX_SEND_ATTEMPTS + 1)):
        worker()
        _run_scheduled_now(app)  # the retry's backoff has passed
    alerts = alert_messages()
    assert [m.status for m in alerts] == ["failed"] * 3
    assert [m.attempts for m in alerts] == [MAX_SEND_ATTEMPTS] * 3
    case = case_by_reference(reference)
    assert case.overdue and case.chain_position == len(CHAIN) - 1
    assert case_events(reference).count("undeliverable") == 3

    login(client, accounts["coordinator"])
    rows = alert_rows(client, reference)
    assert [state for state, _ in rows] == ["failed"] * 3
    assert all(f"after {MAX_SEND_ATTEMPTS} attempts" in row for _, row in rows)


def test_the_case_page_shows_sent_and_delivered_alerts(
    app: Flask,
    client: Any,
    accounts: dict[str, str],
    phone: TwilioPhone,
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
) -> None:
    from tests.conftest import PUBLIC_BASE_URL, sign

    reference = ask_for_help(phone)
    login(client, accounts["admin"])
    assert [state for state, _ in alert_rows(client, reference)] == []  # not dispatched yet
    worker()
    rows = alert_rows(client, reference)
    assert [state for state, _ in rows] == ["sent"]
    assert CHAIN[0][0] in rows[0][1] and CHAIN[0][1] in rows[0][1]
    url = f"{PUBLIC_BASE_URL}/webhooks/twilio/status"
    form = {
        "MessageSid": fake_provider.messages()[0]["id"],
        "MessageStatus": "delivered",
        "AccountSid": "AC" + "0" * 32,
    }
    client.post(
        "/webhooks/twilio/status", data=form, headers={"X-Twilio-Signature": sign(url, form)}
    )
    assert [state for state, _ in alert_rows(client, reference)] == ["delivered"]


def test_a_position_whose_focal_points_are_all_unreached_moves_on(
    phone: TwilioPhone, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    """One focal point of the position sent STOP (its alert is suppressed), the other's alert
    fails: nobody there can answer, so the case goes to the backup at once."""
    from sqlalchemy import update

    from ruta import focal_points
    from ruta.models import Contact, FocalPoint
    from tests.test_referrals import LOS_CHILES_1, UPALA_1, UPALA_2, sent_to

    with db.transaction() as session:
        ids = {
            fp.contact.phone: fp.id
            for fp in session.scalars(select(FocalPoint))
            if fp.contact.phone in (UPALA_1, UPALA_2, LOS_CHILES_1)
        }
        # The opted-out one first (lower id), so the failed alert is the last to report.
        focal_points.set_chain(
            session, "cr-upala", "health", [[ids[UPALA_1], ids[LOS_CHILES_1]], [ids[UPALA_2]]]
        )
        session.execute(
            update(Contact)
            .where(
                Contact.id
                == select(FocalPoint.contact_id)
                .where(FocalPoint.id == ids[UPALA_1])
                .scalar_subquery()
            )
            .values(opted_out=True)
        )
    try:
        fake_provider.fail_number("twilio", LOS_CHILES_1, 21610)
        reference = ask_for_help(phone)
        worker()
        assert [m.status for m in alert_messages()][:2] == ["suppressed", "failed"]
        assert len(sent_to(fake_provider, UPALA_2)) == 1
        assert case_by_reference(reference).chain_position == 1
    finally:
        with db.transaction() as session:
            focal_points.set_chain(session, "cr-upala", "health", [[ids[UPALA_1]], [ids[UPALA_2]]])


def test_a_worker_without_its_provider_settings_shows_on_the_case_pages(
    app: Flask, client: Any, accounts: dict[str, str], sample_case: dict[str, Any]
) -> None:
    from tests.test_worker_readiness import PROVIDER_SETTINGS

    login(client, accounts["admin"])
    page = f"/admin/cases/{sample_case['reference']}"
    assert "cannot send SMS" not in client.get(page).get_data(as_text=True)
    process = spawn_worker(app, unset=PROVIDER_SETTINGS)
    try:
        wait_for(lambda: "cannot send SMS" in client.get(page).get_data(as_text=True), 60)
        for url in (page, "/admin/cases/"):
            shown = client.get(url).get_data(as_text=True)
            assert "cannot send SMS" in shown and "AT_USERNAME, AT_API_KEY" in shown
    finally:
        kill(process)
