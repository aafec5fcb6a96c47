"""BORRAR erases a person's data; closed cases are anonymised after a while (DOMAIN.md)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import func, select, text

from providers.fake_provider import FakeProviderServer
from ruta import contacts
from ruta.db import db
from ruta.models import (
    AuditEntry,
    Case,
    CaseEvent,
    Contact,
    ConversationSession,
    Message,
    Question,
    Subscription,
)
from tests.conftest import PERSON, Clock, TwilioPhone, case_by_reference
from tests.gateway.test_africastalking_webhook import AtPhone
from tests.gateway.test_ussd import AtHandset
from tests.test_referrals import DESCRIPTION, UPALA_1, ask_for_help
from workers.jobs import sweep


def person() -> Contact | None:
    with db.transaction() as session:
        found = contacts.find_contact(session, PERSON)
        if found is not None:
            session.expunge(found)
        return found


def rows_of(contact_id: int) -> dict[str, int]:
    with db.transaction() as session:
        return {
            model.__tablename__: int(
                session.scalar(
                    select(func.count()).select_from(model).where(model.contact_id == contact_id)  # type: ignore[attr-defined]
                )
                or 0
            )
            for model in (Message, ConversationSession, Subscription, Question)
        }


def subscribe_person() -> None:
    from tests.test_broadcasts import place_id

    upala = place_id()
    with db.transaction() as session:
        found = contacts.lock_contact(session, PERSON)
        session.add(
            Subscription(contact_id=found.id, municipality_id=upala, topic="general", language="es")
        )


def test_borrar_erases_the_person_and_anonymises_their_case(
    app: Flask, phone: TwilioPhone, worker: Callable[[], None]
) -> None:
    reference = ask_for_help(phone)
    worker()  # the focal point is alerted
    subscribe_person()
    phone.text("PREGUNTA")
    assert "Recibimos su pregunta" in phone.text("una pregunta para una persona")
    before = person()
    assert before is not None
    assert rows_of(before.id)["messages"] > 0
    assert rows_of(before.id)["questions"] == 1

    reply = phone.text("BORRAR")
    assert "borramos sus datos" in reply
    asked = person()
    assert asked is not None and asked.opted_out and asked.erase_requested_at is not None
    with db.transaction() as session:
        active = session.scalar(
            select(func.count())
            .select_from(Subscription)
            .where(Subscription.contact_id == before.id, Subscription.active.is_(True))
        )
    assert active == 0  # no alert goes out while the erasure waits for the sweeper

    assert sweep()["people_erased"] == 1
    assert person() is None
    assert set(rows_of(before.id).values()) == {0}  # messages, sessions, subscriptions, questions
    case = case_by_reference(reference)
    assert case.contact_id is None and case.description is None and case.safe_times is None
    assert (case.status, case.outcome) == ("closed", "withdrawn")
    assert case.category_code == "health"  # what the figures need stays
    with db.transaction() as session:
        kinds = list(session.scalars(select(CaseEvent.kind).where(CaseEvent.case_id == case.id)))
        actions = set(session.scalars(select(AuditEntry.action)))
        dump = "\n".join(
            " ".join(str(v) for v in row)
            for table in ("case_events", "audit_log", "cases", "messages")
            for row in session.execute(text(f"SELECT * FROM {table}"))  # noqa: S608
        )
    assert kinds[-2:] == ["closed", "anonymised"]
    assert {"case.anonymised", "contact.erased"} <= actions
    assert PERSON not in dump and DESCRIPTION not in dump
    assert sweep()["people_erased"] == 0

    assert "Buscar servicios" in phone.text("HOLA")  # the same number starts afresh
    again = person()
    assert again is not None and not again.opted_out and again.erase_requested_at is None


def test_borrar_over_africastalking_erases_after_the_confirmation_is_out(
    app: Flask, client: Any, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    phone = AtPhone(client)
    phone.post("HOLA")
    worker()
    phone.post("BORRAR")
    assert sweep()["people_erased"] == 0  # its confirmation has not gone out yet
    worker()
    confirmation = fake_provider.messages()[-1]
    assert confirmation["to"] == PERSON and "borramos sus datos" in confirmation["body"]
    assert sweep()["people_erased"] == 1
    assert person() is None


def test_borrar_works_after_stop_too(app: Flask, phone: TwilioPhone) -> None:
    phone.text("HOLA")
    phone.text("BAJA")
    assert "borramos sus datos" in phone.text("BORRAR")
    assert sweep()["people_erased"] == 1
    assert person() is None


def test_a_focal_point_who_sends_borrar_keeps_the_number_routing_needs(
    app: Flask, client: Any
) -> None:
    focal_point = TwilioPhone(client, UPALA_1)
    focal_point.text("BORRAR")
    assert sweep()["people_erased"] == 1
    with db.transaction() as session:
        kept = contacts.find_contact(session, UPALA_1)
        assert kept is not None and kept.erase_requested_at is None
        kept_id = kept.id
    assert rows_of(kept_id)["messages"] == 0


def test_closed_cases_are_anonymised_after_the_configured_days(
    app: Flask, phone: TwilioPhone, client: Any
) -> None:
    closed = ask_for_help(phone)
    other = ask_for_help(TwilioPhone(client, "+50688001133"))  # stays open
    with db.transaction() as session:
        case = session.scalar(select(Case).where(Case.reference == closed))
        assert case is not None
        case.status, case.closed_at, case.outcome = "closed", datetime.now(UTC), "helped"
    app.extensions["ruta.clock"] = Clock(datetime.now(UTC) + timedelta(days=179))
    assert sweep()["cases_anonymised"] == 0
    app.extensions["ruta.redis"].flushdb()  # the hourly turn
    app.extensions["ruta.clock"] = Clock(datetime.now(UTC) + timedelta(days=181))
    assert sweep()["cases_anonymised"] == 1
    anonymised, still_open = case_by_reference(closed), case_by_reference(other)
    assert anonymised.contact_id is None and anonymised.description is None
    assert anonymised.outcome == "helped"  # closed as it was, not withdrawn
    assert still_open.contact_id is not None and still_open.description == DESCRIPTION
    assert person() is not None  # the person stays: only the old case lost its link


QUESTION_WORDS = "donde renuevo el carne de mi hermana"


def stored_text(session: Any) -> list[tuple[str, str, str]]:
    """(table, column, text) of every non-empty value of every table of the models: encrypted
    columns decrypted with the configured keys, JSON and plain columns as stored."""
    from ruta import crypto
    from ruta.models import Base, EncryptedText

    found = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(text(f"SELECT * FROM {table.name}")).mappings():  # noqa: S608
            for column in table.columns:
                value = row[column.name]
                if value is None:
                    continue
                if isinstance(column.type, EncryptedText):
                    value = crypto.current().decrypt(value)
                found.append((table.name, column.name, str(value)))
    return found


def test_after_borrar_and_the_sweeper_no_table_holds_the_number_hash_or_words(
    app: Flask, client: Any, phone: TwilioPhone, worker: Callable[[], None]
) -> None:
    """A rich history first: a described case with consent, accepted, its INFO read by the holder
    (so a message to the focal point holds the number), a question, a USSD session, an alert
    subscription and a broadcast to it; then BORRAR and the sweeper."""
    from ruta import crypto
    from ruta.models import BroadcastRecipient, UssdSession
    from tests.test_broadcasts import create_broadcast
    from workers.broadcast_jobs import start_broadcast

    reference = ask_for_help(phone)
    worker()
    holder = TwilioPhone(client, UPALA_1)
    holder.text(f"OK {reference}")
    assert PERSON in holder.text(f"INFO {reference}")
    worker()  # the acceptance notice to the person
    phone.text("PREGUNTA")
    assert "Recibimos su pregunta" in phone.text(QUESTION_WORDS)
    assert "Buscar servicios" in AtHandset(client).dial()
    subscribe_person()
    start_broadcast(create_broadcast(urgent=True))
    worker()
    before = person()
    assert before is not None
    with db.transaction() as session:
        for model in (UssdSession, BroadcastRecipient):
            rows = select(func.count()).select_from(model).where(model.contact_id == before.id)
            assert session.scalar(rows) == 1
    lookup_hash = crypto.current().lookup_hash(PERSON)
    needles = (PERSON, PERSON.lstrip("+"), PERSON[4:], "8800 1122", lookup_hash)
    needles += (DESCRIPTION, QUESTION_WORDS)
    with db.transaction() as session:
        values = [value for _, _, value in stored_text(session)]
    held = {needle for value in values for needle in needles if needle in value}
    assert held == set(needles) - {"8800 1122"}  # the walk below sees what it looks for

    assert "borramos sus datos" in phone.text("BORRAR")
    worker()
    assert sweep()["people_erased"] == 1
    with db.transaction() as session:
        left = [
            (table, column)
            for table, column, value in stored_text(session)
            if any(needle in value for needle in needles)
        ]
    assert left == []
    assert case_by_reference(reference).status == "closed"


def test_an_info_reply_still_queued_when_the_person_is_erased_is_never_sent(
    app: Flask,
    client: Any,
    phone: TwilioPhone,
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
) -> None:
    """Over Africa's Talking a reply waits for a worker: erasure blanks it and it never goes."""
    reference = ask_for_help(phone)
    worker()
    TwilioPhone(client, UPALA_1).text(f"OK {reference}")
    worker()  # the acceptance notice to the person goes out
    holder = AtPhone(client, UPALA_1)
    assert holder.post(f"INFO {reference}").status_code == 200
    with db.transaction() as session:
        queued = session.scalar(
            select(Message).where(Message.about_case_id.is_not(None), Message.status == "queued")
        )
        assert queued is not None and queued.body is not None and PERSON in queued.body
        reply_id = queued.id
    phone.text("BORRAR")
    assert sweep()["people_erased"] == 1
    worker()
    assert not any(PERSON in m["body"] for m in fake_provider.messages())
    with db.transaction() as session:
        blanked = session.get(Message, reply_id)
        assert blanked is not None and (blanked.body, blanked.status) == (None, "suppressed")
