"""A coordinator writes a broadcast in the browser, in Spanish and in English: the preview with
its cost, the version without accents taken in one click (its cost beside the original), and a
test send that reaches the coordinator's own phone and nobody else."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from flows.encoding import sms_cost, to_gsm7
from providers.fake_provider import FakeProviderServer
from ruta import broadcasts
from ruta.db import db
from ruta.models import Broadcast, Message, User
from tests.admin.test_broadcasts_admin import SUBSCRIBERS, subscribe
from tests.browser.conftest import assert_accessible, log_in, shot
from tests.conftest import Clock

OWN_PHONE = "+50688997766"
TEXT = {
    "es": "Atención: la unidad móvil de registro visitará Upala el jueves de 8 a 14. "
    "Traiga su identificación y la de sus hijos e hijas, si la tienen.",
    "en": "Notice: the mobile registration unit visits Upala on Thursday from 8 to 14. "
    "Bring your identity document and your children’s, if you have them — it’s free.",
}
ALL_TOPICS = {"es": "Todo", "en": "Everything"}  # what people chose by SMS


@pytest.fixture(autouse=True)
def midday_in_costa_rica(app: Flask) -> None:
    app.extensions["ruta.clock"] = Clock(datetime(2026, 11, 24, 18, 0, tzinfo=UTC))


def _me(email: str, language: str) -> None:
    with db.transaction() as session:
        user = session.scalar(select(User).where(User.email == email))
        assert user is not None
        user.language, user.phone = language, OWN_PHONE


@pytest.mark.parametrize("language", ["es", "en"])
def test_a_broadcast_previewed_made_plain_and_test_sent(
    page: Any,
    accounts: dict[str, str],
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
    language: str,
) -> None:
    subscribe()
    email = accounts["coordinator"]
    _me(email, language)
    log_in(page, email)
    page.wait_for_url("**/admin/")
    page.goto("/admin/broadcasts/")
    assert_accessible(page)
    page.click("#new-broadcast")
    page.wait_for_url("**/admin/broadcasts/new")
    assert page.locator("#topic option:checked").inner_text() == ALL_TOPICS[language]
    assert_accessible(page)
    page.fill("#title", "Unidad movil")
    page.select_option("#municipality", "cr-upala")
    other = "en" if language == "es" else "es"
    assert not page.locator(f"#sms-counter-{other}").is_visible()  # empty: not sent, not counted
    page.fill(f"#text-{language}", TEXT[language])
    # The live counter, while typing, counts what will be sent (the stop line too) as the
    # server's preview will.
    typed = sms_cost(broadcasts.with_stop_line(TEXT[language], language))
    counter = page.locator(f"#sms-counter-{language}")
    assert counter.get_attribute("data-segments") == str(typed.segments)
    assert counter.get_attribute("data-encoding") == "UCS-2"
    assert str(len(broadcasts.with_stop_line(TEXT[language], language))) in counter.inner_text()
    assert page.locator(f"#sms-warning-{language}").is_visible()  # the accents' cost, said
    page.fill(f"#text-{language}", to_gsm7(TEXT[language]))
    plain_typed = sms_cost(broadcasts.with_stop_line(to_gsm7(TEXT[language]), language))
    assert counter.get_attribute("data-segments") == str(plain_typed.segments)
    assert counter.get_attribute("data-encoding") == "GSM-7"
    assert not page.locator(f"#sms-warning-{language}").is_visible()
    page.fill(f"#text-{language}", TEXT[language])
    shot(page, f"broadcast-new-{language}")
    page.click("#save-broadcast")
    page.wait_for_selector("#preview")
    assert page.inner_text("#broadcast-topic") == ALL_TOPICS[language]
    assert page.inner_text("#audience") == "3"
    row = page.locator(f"#preview tr[data-language='{language}'] td")
    original = sms_cost(broadcasts.with_stop_line(TEXT[language], language))
    assert row.nth(3).inner_text() == "UCS-2" == original.encoding
    assert row.nth(4).inner_text() == str(original.segments)
    plain_row = page.locator(f"#plain-preview tr[data-language='{language}'] td")
    plain = sms_cost(broadcasts.with_stop_line(to_gsm7(TEXT[language]), language))
    assert plain.segments < original.segments
    assert plain_row.nth(2).inner_text() == "GSM-7"
    assert plain_row.nth(3).inner_text().startswith(f"{plain.segments} ")  # per message
    assert plain_row.nth(4).inner_text().startswith(f"{plain.segments * 3} ")  # in all
    assert_accessible(page)
    shot(page, f"broadcast-preview-{language}")

    page.click("#use-plain")
    page.wait_for_selector("#preview")
    assert page.locator("#plain-preview").count() == 0
    assert page.locator(f"#preview tr[data-language='{language}'] td").nth(3).inner_text() == (
        "GSM-7"
    )
    with db.transaction() as session:
        broadcast = session.scalars(select(Broadcast).order_by(Broadcast.id.desc())).first()
        assert broadcast is not None and broadcast.texts[language] == to_gsm7(TEXT[language])
        broadcast_id = broadcast.id
    assert "7766" in page.inner_text("#test-send") and OWN_PHONE not in page.content()
    assert_accessible(page)
    shot(page, f"broadcast-plain-{language}")

    page.click("#send-test")
    page.wait_for_selector("#test-sends")
    worker()
    messages = fake_provider.messages()
    assert [m["to"] for m in messages] == [OWN_PHONE]  # exactly one, to the coordinator
    assert messages[0]["body"] == broadcasts.with_stop_line(to_gsm7(TEXT[language]), language)
    assert not any(m["to"] in SUBSCRIBERS for m in messages)
    page.reload()
    assert page.inner_text("#audience") == "3"
    assert_accessible(page)
    shot(page, f"broadcast-test-sent-{language}")
    with db.transaction() as session:
        stored = session.scalar(select(Message).where(Message.broadcast_id == broadcast_id))
        assert stored is not None and stored.purpose == "broadcast_test"
        assert broadcasts.progress(session, broadcast_id)["total"] == 0
        assert session.get(Broadcast, broadcast_id).status == "draft"  # type: ignore[union-attr]
