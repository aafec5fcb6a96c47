"""Focal points' SMS commands without ambiguity (issue 10): INFO only for whoever holds the case
(and a coordinator the case has reached), the person's number only to the holder and only when
the person agreed to be contacted, every INFO audited; PASAR, CERRAR, a bare OK and AYUDA."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from flows.encoding import sms_cost
from providers.fake_provider import FakeProviderServer
from ruta import contacts
from ruta.db import db
from ruta.models import AuditEntry, Contact, FocalPoint, Message
from tests.conftest import PERSON, TwilioPhone, case_by_reference, case_events
from tests.test_referrals import (
    CR_COORDINATOR,
    LOS_CHILES_1,
    UPALA_1,
    UPALA_2,
    ask_for_help,
    sent_to,
)
from workers.jobs import sweep

#: The person's number as it may be written: E.164, without the plus, national digits.
NUMBER_FORMS = (PERSON, PERSON.lstrip("+"), PERSON[4:])
UNKNOWN = "ZZZZ9"


def holds_number(body: str | None) -> bool:
    return body is not None and any(form in body for form in NUMBER_FORMS)


def numbers_sent_to() -> set[str]:
    """The numbers of whoever a stored message holding the person's number went to or came
    from (every message, decrypted)."""
    with db.transaction() as session:
        rows = session.execute(
            select(Message.body, Contact.phone).join(Contact, Contact.id == Message.contact_id)
        ).all()
    return {phone for body, phone in rows if holds_number(body)}


def focal_point_id(number: str) -> int:
    with db.transaction() as session:
        contact = contacts.find_contact(session, number)
        assert contact is not None
        found = session.scalar(select(FocalPoint.id).where(FocalPoint.contact_id == contact.id))
        assert found is not None
        return found


def info_audits() -> list[tuple[str, str, str | None, dict[str, Any]]]:
    """(actor, action, object id, detail) of every INFO in the audit log, oldest first."""
    with db.transaction() as session:
        rows = session.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.object_id, AuditEntry.detail)
            .where(AuditEntry.action.like("case.info%"))
            .order_by(AuditEntry.id)
        ).all()
    return [(actor, action, object_id, dict(detail)) for actor, action, object_id, detail in rows]


def neutral_refusal(focal_point: TwilioPhone, reference: str) -> str:
    """What INFO of a case that does not exist answers, written for ``reference``."""
    unknown = focal_point.text(f"INFO {UNKNOWN}")
    assert UNKNOWN in unknown and not holds_number(unknown)
    return unknown.replace(UNKNOWN, reference)


def test_info_answers_only_the_holder_while_open_and_every_attempt_is_audited(
    client: Any, phone: TwilioPhone, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    reference = ask_for_help(phone)
    worker()
    first, backup, coordinator = (
        TwilioPhone(client, number) for number in (UPALA_1, UPALA_2, CR_COORDINATOR)
    )
    neutral = neutral_refusal(first, reference)
    refusals = [
        first.text(f"INFO {reference}"),  # alerted, not accepted
        coordinator.text(f"INFO {reference}"),  # the case has not reached the coordinator
    ]
    first.text(f"PASAR {reference}")
    worker()
    assert len(sent_to(fake_provider, UPALA_2)) == 1  # the backup, of another organisation
    refusals.append(backup.text(f"INFO {reference}"))  # alerted, not accepted
    assert "aceptado" in backup.text(f"OK {reference}")
    refusals.append(first.text(f"INFO {reference}"))  # passed it on
    held = backup.text(f"INFO {reference}")
    assert reference in held and PERSON in held and "telefono propio" in held
    assert "cerrado" in backup.text(f"CERRAR {reference} 1")
    refusals.append(backup.text(f"INFO {reference}"))  # closed
    assert refusals == [neutral] * 5

    events = case_events(reference)
    assert events.count("info_refused") == 5 and events.count("info_read") == 1
    first_id, backup_id = focal_point_id(UPALA_1), focal_point_id(UPALA_2)
    coordinator_id = focal_point_id(CR_COORDINATOR)
    audits = [(actor, action, object_id) for actor, action, object_id, _ in info_audits()]
    refused = "case.info_refused"
    assert audits == [
        (f"focal_point:{first_id}", refused, UNKNOWN),
        (f"focal_point:{first_id}", refused, reference),
        (f"focal_point:{coordinator_id}", refused, reference),
        (f"focal_point:{backup_id}", refused, reference),
        (f"focal_point:{first_id}", refused, reference),
        (f"focal_point:{backup_id}", "case.info", reference),
        (f"focal_point:{backup_id}", refused, reference),
    ]
    assert [d["number_shown"] for _, _, _, d in info_audits()] == [False] * 5 + [True, False]
    # The number reached the accepting focal point and nobody else, in the log and on the wire.
    assert numbers_sent_to() == {UPALA_2}
    assert {m["to"] for m in fake_provider.messages() if holds_number(m["body"])} <= {UPALA_2}


@pytest.mark.usefixtures("clock")
def test_a_coordinator_reads_info_once_the_case_reached_them_but_never_the_number(
    app: Flask,
    client: Any,
    phone: TwilioPhone,
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
) -> None:
    reference = ask_for_help(phone)
    worker()
    coordinator = TwilioPhone(client, CR_COORDINATOR)
    neutral = neutral_refusal(coordinator, reference)
    assert coordinator.text(f"INFO {reference}") == neutral
    time = app.extensions["ruta.clock"]
    for _ in range(2):  # nobody answers: the backup, then the coordinator
        time.now += timedelta(hours=25)
        sweep()
        worker()
    assert len(sent_to(fake_provider, CR_COORDINATOR)) == 1
    overview = coordinator.text(f"INFO {reference}")
    assert overview != neutral and reference in overview and "Upala" in overview
    assert not holds_number(overview)
    assert case_events(reference).count("info_refused") == 1
    assert case_events(reference).count("info_read") == 1
    actions = [(action, d["number_shown"]) for _, action, _, d in info_audits()]
    assert actions == [("case.info_refused", False)] * 2 + [("case.info", False)]
    assert numbers_sent_to() == set()


def test_no_number_when_the_person_did_not_agree_to_be_contacted(
    client: Any, phone: TwilioPhone, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    reference = ask_for_help(phone, times="5")  # "please do not contact me"
    assert case_by_reference(reference).contact_ok is False
    worker()
    holder = TwilioPhone(client, UPALA_1)
    holder.text(f"OK {reference}")
    info = holder.text(f"INFO {reference}")
    assert reference in info and "no autorizado" in info and not holds_number(info)
    assert [d["number_shown"] for _, _, _, d in info_audits()] == [False]
    worker()
    assert numbers_sent_to() == set()
    assert not any(holds_number(m["body"]) for m in fake_provider.messages())


def test_who_passed_a_case_cannot_accept_it_and_the_backup_can(
    client: Any, phone: TwilioPhone, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    reference = ask_for_help(phone)
    worker()
    first = TwilioPhone(client, UPALA_1)
    assert "pasado" in first.text(f"PASAR {reference}")
    refused = first.text(f"OK {reference}")
    assert reference in refused and "ya no puede aceptarlo" in refused
    first.text(f"PASAR {reference}")  # passing twice does not skip the backup
    passed = case_by_reference(reference)
    assert passed.status == "forwarded" and passed.accepted_by_id is None
    assert passed.chain_position == 1 and "accepted" not in case_events(reference)
    worker()
    assert len(sent_to(fake_provider, UPALA_2)) == 1
    assert sent_to(fake_provider, CR_COORDINATOR) == []
    assert f"Caso {reference} aceptado" in TwilioPhone(client, UPALA_2).text(f"OK {reference}")
    accepted = case_by_reference(reference)
    assert accepted.status == "accepted" and accepted.accepted_by_id == focal_point_id(UPALA_2)
    assert "ya fue aceptado" in first.text(f"OK {reference}")  # only the first OK wins


def test_cerrar_without_an_outcome_asks_for_it_and_closes_nothing(
    client: Any, phone: TwilioPhone, worker: Callable[[], None]
) -> None:
    reference = ask_for_help(phone)
    worker()
    holder = TwilioPhone(client, UPALA_1)
    holder.text(f"OK {reference}")
    for command in (f"CERRAR {reference}", f"cerrar {reference.lower()} 3"):
        asked = holder.text(command)
        assert f"CERRAR {reference} 1" in asked and f"CERRAR {reference} 2" in asked
    assert case_by_reference(reference).status == "accepted"
    assert "closed" not in case_events(reference)
    assert f"Caso {reference} cerrado" in holder.text(f"CERRAR {reference} 1")
    closed = case_by_reference(reference)
    assert (closed.status, closed.outcome) == ("closed", "successful")


def test_ok_without_a_reference_lists_the_focal_points_open_cases(
    client: Any, phone: TwilioPhone, worker: Callable[[], None]
) -> None:
    held = ask_for_help(phone)
    waiting = ask_for_help(TwilioPhone(client, "+50688001133"))
    passed = ask_for_help(TwilioPhone(client, "+50688001144"))
    worker()
    focal_point = TwilioPhone(client, UPALA_1)
    focal_point.text(f"OK {held}")
    focal_point.text(f"PASAR {passed}")
    for word in ("OK", "acepto", "ACCEPT"):
        listing = focal_point.text(word)
        assert held in listing and waiting in listing and passed not in listing
        assert "Buscar servicios" not in listing
    nothing = TwilioPhone(client, LOS_CHILES_1).text("OK")
    assert held not in nothing and waiting not in nothing and "Buscar servicios" not in nothing
    assert "Buscar servicios" in TwilioPhone(client, "+50688776655").text("OK")  # not a focal point


def test_ayuda_from_a_focal_point_lists_the_commands_in_their_language(
    client: Any, phone: TwilioPhone
) -> None:
    commands = TwilioPhone(client, UPALA_1).text("AYUDA")
    for word in ("OK", "CERRAR", "PASAR", "INFO", "HOLA"):
        assert word in commands
    assert sms_cost(commands).segments <= 2
    public = phone.text("AYUDA")
    assert "CERRAR" not in public and public != commands
    with db.transaction() as session:
        session.execute(
            update(FocalPoint)
            .where(FocalPoint.id == focal_point_id(LOS_CHILES_1))
            .values(languages=["en"])
        )
    try:
        english = TwilioPhone(client, LOS_CHILES_1).text("HELP")
    finally:
        with db.transaction() as session:
            session.execute(
                update(FocalPoint)
                .where(FocalPoint.id == focal_point_id(LOS_CHILES_1))
                .values(languages=["es"])
            )
    for word in ("OK", "CLOSE", "PASS", "INFO", "HELLO"):
        assert word in english
    assert sms_cost(english).segments <= 2


def test_a_focal_point_in_a_conversation_gets_the_flows_for_bare_words(client: Any) -> None:
    """A focal point texting as a person: HOLA opens the flows, and while a conversation is
    going, a bare word (AYUDA, OK) answers it; a command with a reference is still a command."""
    focal_point = TwilioPhone(client, UPALA_1)
    assert "Buscar servicios" in focal_point.text("HOLA")
    assert "CERRAR" not in focal_point.text("AYUDA")  # the flows' own help
    assert "entre los suyos" in focal_point.text(f"INFO {UNKNOWN}")
