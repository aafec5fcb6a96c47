"""A focal point accepts and closes a case in the browser; the number only after a reveal."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ruta.db import db
from ruta.models import AuditEntry, Case
from tests.browser.conftest import log_in, shot


def test_accept_and_close_a_case(
    page: Any, accounts: dict[str, str], sample_case: dict[str, Any]
) -> None:
    reference = sample_case["reference"]
    log_in(page, accounts["focal_point"])
    page.wait_for_url("**/admin/")
    page.goto("/admin/cases/")
    row = page.locator(f"#cases [data-reference='{reference}']")
    assert row.count() == 1
    assert "+50688004455" not in page.content()  # no numbers in the inbox
    shot(page, "cases-inbox")
    page.goto(f"/admin/cases/{reference}")
    assert page.get_attribute("#case-status", "data-status") == "forwarded"
    assert "+50688004455" not in page.content()  # not before an explicit reveal
    shot(page, "case-forwarded")
    page.click("#accept")
    page.wait_for_load_state()
    assert page.get_attribute("#case-status", "data-status") == "accepted"
    page.click("#reveal")
    page.wait_for_load_state()
    assert "+50688004455" in page.inner_text("#revealed-number")
    shot(page, "case-revealed")
    page.goto(f"/admin/cases/{reference}")
    page.select_option("#outcome", "successful")
    page.click("#close")
    page.wait_for_load_state()
    assert page.get_attribute("#case-status", "data-status") == "closed"
    timeline = page.inner_text("#timeline")
    assert "Accepted by Punto focal Upala" in timeline and "Closed by" in timeline
    shot(page, "case-closed")
    with db.transaction() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        assert case is not None and case.status == "closed" and case.outcome == "successful"
        actions = set(session.scalars(select(AuditEntry.action)))
    assert {"case.view", "case.accept", "case.reveal", "case.close"} <= actions
