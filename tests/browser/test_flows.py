"""A flow editor changes a conversation in the browser: a validation error, the fix, the
simulator, the examples, publishing; new conversations get the new wording while one started
before keeps the old; then a roll back."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import delete, func, select

from ruta.db import db
from ruta.models import FlowDraft, FlowVersion
from tests.browser.conftest import log_in, shot
from tests.conftest import TwilioPhone

OLD = "Ruta: servicios y ayuda cerca de usted."
NEW = "Ruta: servicios y apoyo en su municipio."


def test_edit_validate_simulate_publish_and_roll_back(
    app: Flask, page: Any, accounts: dict[str, str]
) -> None:
    app.extensions["ruta.flows"].recheck_seconds = 0
    with db.transaction() as session:
        before = session.scalar(
            select(func.max(FlowVersion.version)).where(FlowVersion.flow_key == "main")
        )
        original = session.scalar(
            select(FlowVersion.source).where(
                FlowVersion.flow_key == "main", FlowVersion.version == before
            )
        )
    assert before is not None and original is not None and OLD in original
    earlier = TwilioPhone(app.test_client(), "+50688110001")
    assert OLD in earlier.text("HOLA")  # a conversation that started before the change

    try:
        log_in(page, accounts["flow_editor"])
        page.wait_for_url("**/admin/")
        page.goto("/admin/flows/main/edit")
        shot(page, "flow-editor")
        broken = original.replace("goto: find\n", "goto: nowhere\n", 1)
        page.fill("#flow-source", broken)
        page.wait_for_selector("#validation li.error")
        assert "target 'nowhere' does not exist" in page.inner_text("#validation")
        shot(page, "flow-validation-error")

        page.fill("#flow-source", original.replace(OLD, NEW))
        page.wait_for_function(
            "document.querySelector('#validation-summary').textContent.includes('no errors')"
        )
        page.click("#save-draft")
        page.wait_for_load_state()

        page.fill("#sim-input", "HOLA")
        page.click("#sim-send")
        page.wait_for_function(f"document.querySelector('#sim-log').textContent.includes({NEW!r})")
        page.select_option("#sim-mode", "ussd")
        page.fill("#sim-input", "HOLA")
        page.click("#sim-send")
        page.wait_for_function("document.querySelector('#sim-log').textContent.includes('182')")
        shot(page, "flow-simulator")

        page.click("#run-examples")
        page.wait_for_function(
            "document.querySelector('#examples-result').textContent.includes('failed')"
        )
        assert " 0 failed" in page.inner_text("#examples-result")
        shot(page, "flow-examples")
        page.fill("#publish-note", "friendlier greeting")
        page.click("#publish")
        page.wait_for_load_state()
        shot(page, "flow-published")
        with db.transaction() as session:
            latest = session.scalar(
                select(func.max(FlowVersion.version)).where(FlowVersion.flow_key == "main")
            )
        assert latest == before + 1

        newcomer = TwilioPhone(app.test_client(), "+50688110002")
        assert NEW in newcomer.text("HOLA")  # new conversations use the new version
        assert "municipio" in earlier.text("1")  # the earlier one goes on on its version...
        assert OLD in earlier.text("0")  # ...and shows its old wording

        page.goto("/admin/flows/main")
        shot(page, "flow-versions")
        page.click(f"#rollback-{before}")
        page.wait_for_load_state()
        with db.transaction() as session:
            rolled = session.scalar(
                select(FlowVersion).where(
                    FlowVersion.flow_key == "main", FlowVersion.version == before + 2
                )
            )
        assert rolled is not None and rolled.source == original
        assert OLD in TwilioPhone(app.test_client(), "+50688110003").text("HOLA")
    finally:
        with db.transaction() as session:  # leave the published flows as the other tests expect
            session.execute(
                delete(FlowVersion).where(
                    FlowVersion.flow_key == "main", FlowVersion.version > before
                )
            )
            session.execute(delete(FlowDraft))
