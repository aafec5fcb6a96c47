"""Satellite and other non-geographic numbers (+881 Iridium/Globalstar, +882 international
networks) belong to no country: a question from one is kept, with no country, for an admin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from providers.fake_provider import FakeProviderServer
from ruta.db import db
from ruta.models import Question
from tests.admin.conftest import csrf_token, login
from tests.conftest import TwilioPhone

ASKED = "Puedo pedir asilo en la frontera?"
ANSWER = "Si. Pregunte en la oficina de migracion, lunes a viernes."


@pytest.mark.parametrize("number", ["+881632123456", "+8821612345678"])
def test_a_question_from_a_nongeographic_number_is_kept_and_answered(
    client: Any,
    accounts: dict[str, str],
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
    number: str,
) -> None:
    phone = TwilioPhone(client, number)
    assert "Escriba su pregunta" in phone.text("PREGUNTA")
    assert "Recibimos su pregunta" in phone.text(ASKED)
    with db.transaction() as session:
        [question] = session.scalars(select(Question))
        question_id, country, reference = question.id, question.country, question.reference
    assert country is None  # "001" is no country; it does not fit an ISO code either

    login(client, accounts["admin"])
    assert f"/admin/questions/{question_id}" in client.get("/admin/questions/").get_data(
        as_text=True
    )
    page = client.get(f"/admin/questions/{question_id}").get_data(as_text=True)
    assert ASKED in page and number not in page
    response = client.post(
        f"/admin/questions/{question_id}/answer",
        data={"answer": ANSWER, "csrf_token": csrf_token(page)},
    )
    assert response.status_code == 302
    worker()
    sent = [m["body"] for m in fake_provider.messages() if m["to"] == number]
    assert sent == [f"Ruta: respuesta a su pregunta {reference}: {ANSWER}"]
