"""A coordinator answers a person's question in the browser; figures show no small counts."""

from __future__ import annotations

from typing import Any

from ruta import contacts, questions
from ruta.db import db
from ruta.models import Message, Question
from tests.browser.conftest import log_in, shot

WORDS = "Donde puedo renovar mi permiso provisional?"
ANSWER = "En la oficina de migracion de Upala, de lunes a viernes de 8 a 16."


def test_a_coordinator_answers_a_question(page: Any, accounts: dict[str, str]) -> None:
    with db.transaction() as session:
        person = contacts.lock_contact(session, "+50688007766")
        question = Question(
            reference=questions.new_reference(session),
            contact_id=person.id,
            channel="twilio",
            language="es",
            country="CR",
            text=WORDS,
        )
        session.add(question)
        session.flush()
        question_id = question.id
    log_in(page, accounts["coordinator"])
    page.wait_for_url("**/admin/")
    page.goto("/admin/questions/")
    page.click(f"a[href='/admin/questions/{question_id}']")
    page.wait_for_load_state()
    assert WORDS in page.inner_text("#question-text")
    assert "+50688007766" not in page.content()
    shot(page, "question-open")
    page.fill("#answer", ANSWER)
    page.click("#send-answer")
    page.wait_for_load_state()
    assert "on its way" in page.content()
    shot(page, "questions-after-answer")
    with db.transaction() as session:
        answered = session.get(Question, question_id)
        assert answered is not None and answered.status == "answered"
        sent = session.get(Message, answered.answer_message_id)
        assert sent is not None and sent.status == "queued"
        assert sent.body == f"Ruta: respuesta a su pregunta {answered.reference}: {ANSWER}"


def test_figures_page(page: Any, accounts: dict[str, str]) -> None:
    from tests.admin.test_figures_admin import add_cases

    add_cases("documents", 6, answered_after_hours=[1, 2, 3, 4, 5, 6])
    add_cases("health", 3)
    log_in(page, accounts["viewer"])
    page.wait_for_url("**/admin/")
    page.click("text=Figures")
    page.wait_for_load_state()
    assert "never as itself" in page.content()
    assert page.locator("#requests td[data-category='documents']").first.inner_text() == "6"
    assert page.locator("#requests td[data-category='health']").first.inner_text() == "<5"
    assert "3.5 h" in page.inner_text("#responses")
    shot(page, "figures")
