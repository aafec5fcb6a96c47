"""Questions for a human (journey 6): asked in the flows, answered by SMS from the admin."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select, text

from providers.fake_provider import FakeProviderServer
from ruta import contacts, retention
from ruta.db import db
from ruta.models import AuditEntry, Question
from ruta.questions import new_reference
from tests.admin.conftest import csrf_token, login
from tests.conftest import PERSON, TwilioPhone

ASKED = "Puedo trabajar mientras espero la respuesta de mi solicitud?"
ANSWER = "Si, con el permiso provisional. Pregunte en la oficina municipal, lunes a viernes."
GUATEMALA = "+50255501234"


def ask(client: Any, number: str = PERSON, words: str = ASKED) -> int:
    phone = TwilioPhone(client, number)
    assert "Escriba su pregunta" in phone.text("PREGUNTA")
    assert "Recibimos su pregunta" in phone.text(words)
    with db.transaction() as session:
        found = session.scalars(select(Question.id).order_by(Question.id.desc())).first()
        assert found is not None
        return found


def reference_of(question_id: int) -> str:
    with db.transaction() as session:
        found = session.get(Question, question_id)
        assert found is not None
        return found.reference


def post(client: Any, url: str, **form: str) -> Any:
    page = client.get("/admin/")
    return client.post(url, data={"csrf_token": csrf_token(page.get_data(as_text=True)), **form})


def status_of(question_id: int) -> str:
    with db.transaction() as session:
        found = session.get(Question, question_id)
        assert found is not None
        return found.status


def audited(action: str) -> int:
    with db.transaction() as session:
        return len(list(session.scalars(select(AuditEntry).where(AuditEntry.action == action))))


def test_a_question_is_answered_by_sms_from_the_admin(
    client: Any,
    accounts: dict[str, str],
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
) -> None:
    question_id = ask(client)
    with db.transaction() as session:
        stored = "\n".join(
            " ".join(str(v) for v in row)
            for row in session.execute(text("SELECT * FROM questions"))
        )
    assert ASKED not in stored and "CR" in stored  # encrypted at rest; country from the number

    login(client, accounts["coordinator"])  # Costa Rica
    inbox = client.get("/admin/questions/").get_data(as_text=True)
    assert f"/admin/questions/{question_id}" in inbox and PERSON not in inbox
    page = client.get(f"/admin/questions/{question_id}")
    assert ASKED in page.get_data(as_text=True) and PERSON not in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert audited("question.view") == 1

    response = post(client, f"/admin/questions/{question_id}/answer", answer=ANSWER)
    assert response.status_code == 302
    assert status_of(question_id) == "answered"
    assert audited("question.answer") == 1
    worker()
    [sent] = [m for m in fake_provider.messages() if m["to"] == PERSON]
    assert sent["body"] == f"Ruta: respuesta a su pregunta {reference_of(question_id)}: {ANSWER}"
    again = post(client, f"/admin/questions/{question_id}/answer", answer="otra vez")
    assert again.status_code == 409 and "no longer open" in again.get_data(as_text=True)
    worker()
    assert len([m for m in fake_provider.messages() if m["to"] == PERSON]) == 1


def test_a_coordinator_sees_only_their_countrys_questions(
    client: Any, accounts: dict[str, str]
) -> None:
    question_id = ask(client, GUATEMALA)
    login(client, accounts["coordinator"])  # Costa Rica
    assert f"/admin/questions/{question_id}" not in client.get("/admin/questions/").get_data(
        as_text=True
    )
    assert client.get(f"/admin/questions/{question_id}").status_code == 404
    assert post(client, f"/admin/questions/{question_id}/close").status_code == 404
    login(client, accounts["admin"])
    assert client.get(f"/admin/questions/{question_id}").status_code == 200
    assert client.get("/admin/questions/").status_code == 200


def test_answers_too_long_or_to_someone_who_stopped_are_refused_with_the_reason(
    client: Any, accounts: dict[str, str], worker: Callable[[], None]
) -> None:
    question_id = ask(client)
    login(client, accounts["admin"])
    long = post(client, f"/admin/questions/{question_id}/answer", answer="palabra " * 60)
    page = long.get_data(as_text=True)
    assert long.status_code == 400
    assert "takes 4 SMS" in page and "at most 2" in page
    assert ">" + "palabra " * 60 + "</textarea>" in page  # the text is kept, as typed
    assert status_of(question_id) == "open"
    # 300 letters fit 2 SMS alone, not with "Ruta: respuesta a su pregunta Q7K2P: " before them
    tight = post(client, f"/admin/questions/{question_id}/answer", answer="a" * 300)
    page = tight.get_data(as_text=True)
    assert tight.status_code == 400 and "takes 3 SMS" in page and "at most 2" in page
    assert status_of(question_id) == "open"
    TwilioPhone(client).text("BAJA", sid="SM" + "b" * 32)  # a new message, not a redelivery
    stopped = post(client, f"/admin/questions/{question_id}/answer", answer=ANSWER)
    assert stopped.status_code == 409
    assert "stopped all messages" in stopped.get_data(as_text=True)
    assert f">{ANSWER}</textarea>" in stopped.get_data(as_text=True)
    assert status_of(question_id) == "open"
    unconfirmed = post(client, f"/admin/questions/{question_id}/close")
    assert unconfirmed.status_code == 400 and "tick the box" in unconfirmed.get_data(as_text=True)
    assert status_of(question_id) == "open"
    closed = post(client, f"/admin/questions/{question_id}/close", confirm="1")
    assert closed.status_code == 302 and status_of(question_id) == "closed"
    assert audited("question.close") == 1


def test_the_words_of_old_answered_questions_are_purged(client: Any) -> None:
    asked, still_open = ask(client), ask(client, GUATEMALA)
    with db.transaction() as session:
        question = session.get(Question, asked)
        assert question is not None
        question.status, question.answer = "answered", ANSWER
        question.answered_at = datetime.now(UTC)
    later = datetime.now(UTC) + timedelta(days=31)
    with db.transaction() as session:
        assert retention.purge_question_text(session, later, 30) == 1
        purged, kept = session.get(Question, asked), session.get(Question, still_open)
        assert purged is not None and kept is not None
        assert (purged.text, purged.answer) == (None, None)
        assert kept.text == ASKED


def test_each_question_has_a_reference_the_person_is_told_and_the_answer_names(
    client: Any,
    accounts: dict[str, str],
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
) -> None:
    spanish = ask(client)
    english_phone = TwilioPhone(client, "+50688003344")
    assert "Find services" in english_phone.text("Hello")
    assert "Write your question" in english_phone.text("QUESTION")
    told_in_english = english_phone.text("Can I work while I wait for my papers?")
    with db.transaction() as session:
        english = session.scalars(select(Question.id).order_by(Question.id.desc())).first()
        assert english is not None and english != spanish
    references = {reference_of(spanish), reference_of(english)}
    assert len(references) == 2
    assert all(re.fullmatch(r"Q[2-9A-HJKMNP-Z]{4}", r) for r in references)
    assert reference_of(english) in told_in_english
    told_in_spanish = TwilioPhone(client, "+50688005566")
    told_in_spanish.text("PREGUNTA")
    told = told_in_spanish.text(ASKED)
    with db.transaction() as session:
        third = session.scalars(select(Question.id).order_by(Question.id.desc())).first()
        assert third is not None
    assert f"pregunta {reference_of(third)}" in told  # "Recibimos su pregunta Q7K2P."

    login(client, accounts["coordinator"])
    inbox = client.get("/admin/questions/").get_data(as_text=True)
    assert all(r in inbox for r in references)
    found = client.get(f"/admin/questions/?q={reference_of(english).lower()}").get_data(
        as_text=True
    )
    assert reference_of(english) in found and reference_of(spanish) not in found
    assert reference_of(spanish) in client.get(f"/admin/questions/{spanish}").get_data(as_text=True)

    post(client, f"/admin/questions/{english}/answer", answer="Yes, with the permit.")
    worker()
    [sent] = [m for m in fake_provider.messages() if m["to"] == "+50688003344"]
    expected = f"Ruta: answer to your question {reference_of(english)}: Yes, with the permit."
    assert sent["body"] == expected


HONDURAS = "+50495551234"


def add_question(number: str, country: str, words: str, at: datetime) -> tuple[int, str]:
    with db.transaction() as session:
        person = contacts.lock_contact(session, number)
        question = Question(
            reference=new_reference(session),
            contact_id=person.id,
            channel="twilio",
            language="es",
            country=country,
            text=words,
            created_at=at,
        )
        session.add(question)
        session.flush()
        return question.id, question.reference


def test_the_list_shows_each_question_and_each_view_of_it_is_audited(
    client: Any, accounts: dict[str, str]
) -> None:
    noon = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
    first, _ = add_question(PERSON, "CR", ASKED, noon)
    second, second_ref = add_question("+50688001122", "CR", "Otra pregunta sobre el permiso", noon)
    elsewhere, _ = add_question(GUATEMALA, "GT", "Pregunta de Guatemala", noon)
    login(client, accounts["coordinator"])  # Costa Rica
    page = client.get("/admin/questions/")
    html = page.get_data(as_text=True)
    assert ASKED in html and "Otra pregunta sobre el permiso" in html
    assert "Pregunta de Guatemala" not in html and PERSON not in html
    assert page.headers["Cache-Control"] == "no-store"
    with db.transaction() as session:
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.action == "question.list"))
        assert sorted(entry.detail["questions"]) == sorted([first, second])
    assert elsewhere not in entry.detail["questions"]
    found = client.get(f"/admin/questions/?q={second_ref.lower()}").get_data(as_text=True)
    assert "Otra pregunta sobre el permiso" in found and ASKED not in found
    with db.transaction() as session:
        entries = list(
            session.scalars(select(AuditEntry).where(AuditEntry.action == "question.list"))
        )
        assert len(entries) == 2 and entries[-1].detail["questions"] == [second]


def test_a_honduras_question_is_shown_in_honduras_time(
    client: Any, accounts: dict[str, str]
) -> None:
    question_id, _ = add_question(
        HONDURAS, "HN", "Pregunta desde Honduras", datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
    )
    login(client, accounts["admin"])
    page = client.get(f"/admin/questions/{question_id}").get_data(as_text=True)
    received = re.search(r'<td id="question-received">(.*?)</td>', page, re.S)
    assert received is not None
    assert 'datetime="2026-11-24T18:00:00+00:00"' in received.group(1)
    assert 'title="2026-11-24 18:00 UTC"' in received.group(1)
    assert "12:00" in received.group(1)  # Tegucigalpa is UTC-6
    assert "Honduras" in page


def test_the_question_pages_in_spanish(app: Flask, client: Any, accounts: dict[str, str]) -> None:
    question_id, _ = add_question(PERSON, "CR", ASKED, datetime(2026, 11, 24, 18, 0, tzinfo=UTC))
    app.config["RUTA_ADMIN_LANGUAGE"] = "es"
    try:
        login(client, accounts["coordinator"])
        inbox = client.get("/admin/questions/").get_data(as_text=True)
        assert "Preguntas" in inbox and "Abierta" in inbox and ">open<" not in inbox
        page = client.get(f"/admin/questions/{question_id}").get_data(as_text=True)
        assert "Cerrar sin responder" in page and "Enviar la respuesta" in page
        refused = post(client, f"/admin/questions/{question_id}/answer", answer="á" * 150)
        assert refused.status_code == 400
        assert "No se envió" in refused.get_data(as_text=True)
        assert "á" * 150 in refused.get_data(as_text=True)
    finally:
        app.config["RUTA_ADMIN_LANGUAGE"] = "en"
