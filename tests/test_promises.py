"""What Ruta promises a person asking for help, kept (issue 10): route before promising, consent
that names who receives, one open request kept current."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from click.testing import CliRunner
from flask import Flask
from sqlalchemy import select, update

from cli import main
from providers.fake_provider import FakeProviderServer
from ruta import clock, figures
from ruta.db import db
from ruta.models import (
    Case,
    FocalPoint,
    Message,
    Organization,
    Referral,
    UnroutedRequest,
)
from tests.conftest import PERSON, TwilioPhone, case_by_reference, case_events, count
from tests.test_referrals import CR_COORDINATOR, UPALA_1, UPALA_2, ask_for_help, sent_to

GUATEMALA_PERSON = "+50255552001"
GT_COORDINATOR = "+50200001999"
#: What a person must never read when nobody will receive their request.
PROMISES = ("atendera", "Referencia", "referencia", "Enviamos su solicitud", "pasamos")


def deactivate(*numbers: str) -> None:
    """Switch focal points off (the test fixture switches every one on again)."""
    from ruta import contacts

    with db.transaction() as session:
        ids = [contacts.find_contact(session, n).id for n in numbers]  # type: ignore[union-attr]
        session.execute(
            update(FocalPoint).where(FocalPoint.contact_id.in_(ids)).values(active=False)
        )


def test_a_request_nobody_can_receive_promises_nothing(
    client: Any, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    deactivate(GT_COORDINATOR)  # Esquipulas has no chain: now nobody at all receives there
    phone = TwilioPhone(client, GUATEMALA_PERSON)
    phone.text("HOLA")
    phone.text("2")
    assert "110 o 1500" in phone.text("no")  # not safe: the numbers at once
    phone.text("1")  # health
    reply = phone.text("esquipulas")
    # No consent asked, nothing promised; the truth, the numbers again, services of that kind.
    assert "Aun no hay una oficina que reciba solicitudes en Esquipulas" in reply, reply
    assert "110 o 1500" in reply and "Centro de salud Esquipulas" in reply
    assert not any(word in reply for word in PROMISES) and "SI o NO" not in reply
    assert count(Case) == 0 and count(Referral) == 0
    with db.transaction() as session:
        (need,) = session.scalars(select(UnroutedRequest)).all()
        assert (need.category_code, need.urgency, need.country) == ("health", "immediate", "GT")
        # The unmet need is in the figures, with nothing about the person.
        found = figures.compute(
            session, select(Case), now=clock.now(), weeks=4, unrouted=select(UnroutedRequest)
        )
    assert [(place, n) for place, _label, n in found.unrouted] == [("Esquipulas", 1)]
    worker()
    assert fake_provider.messages() == []  # no alert to anyone


def test_safe_and_no_service_of_that_kind_still_says_the_truth(client: Any) -> None:
    deactivate(GT_COORDINATOR)
    phone = TwilioPhone(client, GUATEMALA_PERSON)
    for text in ("HOLA", "2", "si"):
        phone.text(text)
    phone.text("estudios")  # education: Esquipulas has no such service
    reply = phone.text("esquipulas")
    assert "Aun no hay una oficina" in reply and "HOLA" in reply
    assert "110" not in reply  # safe: no emergency numbers pushed at them
    assert not any(word in reply for word in PROMISES)


def test_routing_that_fails_between_question_and_consent_is_not_promised(client: Any) -> None:
    phone = TwilioPhone(client, GUATEMALA_PERSON)
    for text in ("HOLA", "2", "si", "1", "esquipulas", "no"):
        reply = phone.text(text)
    assert "Coordinacion" not in reply and "Municipalidad (demo)" in reply  # the organisation
    phone.text("si")
    phone.text("no")
    deactivate(GT_COORDINATOR)  # the intake goes away before the last answer
    done = phone.text("2")
    assert "Aun no hay una oficina" in done and "Referencia" not in done
    assert count(Case) == 0 and count(UnroutedRequest) == 1


def test_routing_check_names_each_gap_and_passes_on_the_demo(app: Flask, monkeypatch: Any) -> None:
    for name in ("RUTA_SECRET_KEY", "RUTA_DATA_KEY", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.setenv(name, app.config[name])
    clean = CliRunner().invoke(main, ["routing", "check"])
    assert clean.exit_code == 0, clean.output
    assert "no gaps" in clean.output
    deactivate(GT_COORDINATOR)
    gaps = CliRunner().invoke(main, ["routing", "check"])
    assert gaps.exit_code == 1, gaps.output
    assert "Esquipulas (GT, gt-esquipulas): nobody receives health" in gaps.output
    assert "Villa Nueva (GT" in gaps.output and "GT: no active coordinator" in gaps.output
    assert "Upala" not in gaps.output  # Upala's chain and the CR coordinator still receive


def test_consent_names_the_first_organisation_and_covers_only_the_chain(
    client: Any, phone: TwilioPhone, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    for text in ("HOLA", "2", "si", "1", "upala", "no"):
        consent = phone.text(text)
    assert "¿Enviamos su solicitud a Municipalidad (demo)?" in consent
    assert "otra oficina de la red" in consent and "su numero, solo quien acepte" in consent
    phone.text("si")
    phone.text("no")
    reference = phone.text("2").split("Referencia: ")[1][:5]
    with db.transaction() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        assert case is not None
        orgs = dict(session.execute(select(Organization.name, Organization.id)).all())
        # Upala's chain (the municipal office, then the community network) and the coordinator.
        assert case.consent_scope == sorted(
            {orgs["Municipalidad (demo)"], orgs["Red Comunitaria Ejemplo"]}
        )
        # As if the community network had joined the chain after the person said yes.
        case.consent_scope = [orgs["Municipalidad (demo)"]]
    worker()
    assert len(sent_to(fake_provider, UPALA_1)) == 1
    TwilioPhone(client, UPALA_1).text(f"PASAR {reference}")
    worker()
    assert sent_to(fake_provider, UPALA_2) == []  # its organisation was never named
    assert len(sent_to(fake_provider, CR_COORDINATOR)) == 1
    assert "not_covered" in case_events(reference)
    with db.transaction() as session:
        reached = session.scalars(
            select(FocalPoint.organization_id)
            .join(Referral, Referral.focal_point_id == FocalPoint.id)
            .join(Case, Case.id == Referral.case_id)
            .where(Case.reference == reference)
        ).all()
    assert set(reached) == {orgs["Municipalidad (demo)"]}


def test_a_second_request_updates_the_open_one_and_a_shared_phone_stops_notices(
    client: Any, phone: TwilioPhone, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    reference = ask_for_help(phone, shared="no")
    worker()
    focal_point = TwilioPhone(client, UPALA_1)
    focal_point.text(f"OK {reference}")  # the acceptance notice is queued, not yet sent
    phone.text("HOLA")
    opened = phone.text("2")
    assert f"Ya tiene una solicitud abierta: {reference}, aceptada, en curso" in opened
    assert "911" in opened and "1 Cambiar como contactarle" in opened
    assert "leen este telefono" in phone.text("1")
    phone.text("si")  # others read this phone now
    assert f"su solicitud {reference} quedo actualizada" in phone.text("3")
    updated = case_by_reference(reference)
    assert updated.shared_phone is True and updated.safe_times == "evening"
    assert {"contact_updated", "notices_dropped"} <= set(case_events(reference))
    worker()
    focal_point.text(f"CERRAR {reference} 1")
    worker()
    assert sent_to(fake_provider, PERSON) == []  # neither the queued notice nor the closing one
    with db.transaction() as session:
        statuses = session.scalars(select(Message.status).where(Message.purpose == "notice")).all()
    assert statuses and set(statuses) == {"suppressed"}


def test_a_second_request_can_add_a_note(client: Any, phone: TwilioPhone) -> None:
    reference = ask_for_help(phone)
    phone.text("HOLA")
    phone.text("2")
    assert "nota" in phone.text("2")
    assert "quedo actualizada" in phone.text("ya tengo cita el lunes")
    with_note = case_by_reference(reference)
    assert with_note.description is not None and "ya tengo cita el lunes" in with_note.description
    assert "necesito ver a un medico" in with_note.description  # nothing said before is lost
    assert case_events(reference).count("note_added") == 1
