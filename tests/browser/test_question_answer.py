"""A coordinator answers a question in the browser, in Spanish and in English: the live SMS
counter changes as they type and warns over the limit, counting exactly as the server does; the
answer is written and sent with the keyboard only; a refused answer comes back in its box."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from flows.encoding import sms_cost
from ruta import contacts, questions
from ruta.db import db
from ruta.models import Message, Question, User
from tests.browser.conftest import assert_accessible, log_in, shot

WORDS = "Donde puedo renovar mi permiso provisional?"
ANSWER = {
    "es": "En la oficina de migracion de Upala, de lunes a viernes de 8 a 16.",
    "en": "At the migration office in Upala, Monday to Friday from 8 to 16.",
}
#: Accents make it UCS-2: 70 characters an SMS alone, 67 a part; with the prefix, over 2 SMS.
TOO_LONG = "Atención: la oficina de migración está en Upala, frente al parque. " * 2
SEND_LABEL = {"es": "Enviar la respuesta", "en": "Send the answer"}
CLOSE_LABEL = {"es": "Cerrar sin responder", "en": "Close without answering"}
#: Texts whose cost the browser's counter must give exactly as flows/encoding.py does.
SAMPLES = [
    "",
    "a" * 160,
    "a" * 161,
    "€" * 80,
    "a" * 152 + "€" + "a" * 10,
    "á" * 70,
    "á" * 71,
    "Hola 👋🏽 familia 👨‍👩‍👧",
    "🇨🇷" * 40,
    "e\u0301" * 70,
    "línea\nnueva y [corchetes] {llaves} ~ | ^ \\",
    "Ñandú ¿sí? ¡no! Ü ß Æ",
]


def _language(email: str, language: str) -> None:
    with db.transaction() as session:
        user = session.scalar(select(User).where(User.email == email))
        assert user is not None
        user.language = language


def _question(language: str) -> int:
    with db.transaction() as session:
        person = contacts.lock_contact(session, "+50688007766")
        question = Question(
            reference=questions.new_reference(session),
            contact_id=person.id,
            channel="twilio",
            language=language,
            country="CR",
            text=WORDS,
        )
        session.add(question)
        session.flush()
        return question.id


def _tab_to(page: Any, element_id: str, limit: int = 60) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} is not reachable with Tab")


def _counter(page: Any) -> tuple[int, str, str]:
    counter = page.locator("#sms-counter")
    return (
        int(counter.get_attribute("data-segments")),
        counter.get_attribute("data-encoding"),
        counter.inner_text(),
    )


@pytest.mark.parametrize("language", ["es", "en"])
def test_a_question_answered_with_the_live_counter_and_the_keyboard(
    page: Any, accounts: dict[str, str], language: str
) -> None:
    email = accounts["coordinator"]
    _language(email, language)
    question_id = _question(language)
    log_in(page, email)
    page.wait_for_url("**/admin/")
    page.goto("/admin/questions/")
    assert WORDS in page.inner_text("#questions")  # the question itself in the list
    assert page.locator("html").get_attribute("lang") == language
    assert_accessible(page)
    shot(page, f"questions-list-{language}")
    page.click(f"a[href='/admin/questions/{question_id}']")
    page.wait_for_url(f"**/admin/questions/{question_id}")
    assert page.inner_text("#send-answer") == SEND_LABEL[language]
    close = page.locator("#close-question")
    assert close.inner_text() == CLOSE_LABEL[language]
    assert "danger" in (close.get_attribute("class") or "")  # destructive, and looks it
    assert close.evaluate("b => getComputedStyle(b).backgroundColor") != page.locator(
        "#send-answer"
    ).evaluate("b => getComputedStyle(b).backgroundColor")
    assert close.evaluate("b => b.closest('form').id") != page.locator("#send-answer").evaluate(
        "b => b.closest('form').id"
    )
    assert page.locator("#close-confirm").get_attribute("required") is not None
    assert_accessible(page)

    # The counter starts with the prefix the server puts before every answer.
    prefix = page.locator("#answer").get_attribute("data-sms-prefix")
    assert prefix == questions.ANSWER_PREFIX[language].format(
        reference=page.inner_text("#question-reference")
    )
    start = _counter(page)
    assert start[:2] == (1, "GSM-7") and str(len(prefix)) in start[2]

    # The browser counts exactly as the server: compare on texts at every boundary.
    rules = page.evaluate("JSON.parse(document.getElementById('answer').dataset.smsRules)")
    for sample in SAMPLES:
        got = page.evaluate("([t, r]) => rutaSmsCost(t, r)", [sample, rules])
        cost = sms_cost(sample)
        assert (got["encoding"], got["units"], got["segments"]) == (
            cost.encoding,
            cost.units,
            cost.segments,
        ), sample

    # Keyboard only: Tab to the box, type; the counter follows and warns over the limit.
    _tab_to(page, "answer")
    page.keyboard.type(TOO_LONG)
    segments, encoding, text = _counter(page)
    expected = sms_cost(prefix + TOO_LONG.strip())
    assert (segments, encoding) == (expected.segments, "UCS-2") and segments > 2
    assert "UCS-2" in text and f"{segments} " in text  # what the coordinator reads
    assert page.locator("#sms-warning").is_visible()
    assert page.locator("#answer").get_attribute("aria-invalid") == "true"
    shot(page, f"question-counter-over-{language}")
    # Sent anyway, the server refuses it and gives the text back with the reason.
    _tab_to(page, "send-answer")
    page.keyboard.press("Enter")
    page.wait_for_selector("#answer-refused")
    assert page.input_value("#answer") == TOO_LONG
    assert_accessible(page)
    shot(page, f"question-refused-{language}")

    page.focus("#answer")  # back in the box, as after the refusal's message
    page.keyboard.press("Control+A")
    page.keyboard.type(ANSWER[language])
    segments, encoding, _ = _counter(page)
    assert (segments, encoding) == (sms_cost(prefix + ANSWER[language]).segments, "GSM-7")
    assert not page.locator("#sms-warning").is_visible()
    shot(page, f"question-counter-{language}")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "send-answer"
    page.keyboard.press("Enter")
    page.wait_for_url("**/admin/questions/")
    assert_accessible(page)
    shot(page, f"question-answered-{language}")
    with db.transaction() as session:
        answered = session.get(Question, question_id)
        assert answered is not None and answered.status == "answered"
        sent = session.scalar(select(Message).where(Message.id == answered.answer_message_id))
        assert sent is not None and sent.body == prefix + ANSWER[language]
