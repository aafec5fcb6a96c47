"""Referrals end to end: a request for help reaches the focal point through a real RQ worker and
the real twilio SDK against the fake provider; acceptance, escalation and failures."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from redis import Redis
from sqlalchemy import func, select

from providers.fake_provider import FakeProviderServer
from ruta.db import db
from ruta.models import Case, Message, OutboxEvent
from tests.conftest import (
    PERSON,
    Clock,
    TwilioPhone,
    case_by_reference,
    case_events,
)
from workers.jobs import sweep

UPALA_1, UPALA_2, CR_COORDINATOR = "+50600001001", "+50600001002", "+50600001999"
LOS_CHILES_1 = "+50600001011"
DESCRIPTION = "necesito ver a un medico por mi hija"


def ask_help_answers(
    *, safe: str = "si", shared: str = "no", kind: str = "1", times: str = "2"
) -> list[str]:
    """What a person types to ask for help in Upala with consent. ``kind`` and ``times`` are the
    options chosen: 1 health, 2 documents...; 2 the afternoon, 5 "do not contact me"."""
    return ["HOLA", "2", safe, kind, "upala", DESCRIPTION, "si", shared, times]


def ask_for_help(
    phone: TwilioPhone, *, safe: str = "si", shared: str = "no", kind: str = "1", times: str = "2"
) -> str:
    """Walk the ask-help flow with consent; return the reference the person was given."""
    *answers, last = ask_help_answers(safe=safe, shared=shared, kind=kind, times=times)
    for answer in answers:
        phone.text(answer)
    done = phone.text(last)
    assert "Referencia:" in done, done
    return done.split("Referencia: ")[1][:5]


def sent_to(fake: FakeProviderServer, number: str) -> list[str]:
    return [m["body"] for m in fake.messages() if m["to"] == number]


def test_alert_reaches_the_focal_point_with_the_minimum(
    phone: TwilioPhone, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    reference = ask_for_help(phone)
    assert fake_provider.messages() == []  # nothing goes out before a worker runs
    worker()
    alerts = sent_to(fake_provider, UPALA_1)
    assert len(alerts) == 1
    alert = alerts[0]
    assert reference in alert and f"OK {reference}" in alert
    assert "Tipo: Salud." in alert and "Lugar: Upala." in alert and "Prioridad: Normal." in alert
    assert PERSON not in alert and PERSON.lstrip("+") not in alert
    assert "medico" not in alert and DESCRIPTION not in alert
    assert fake_provider.messages()[0]["status_callback"].endswith("/webhooks/twilio/status")
    assert case_by_reference(reference).status == "forwarded"
    assert case_events(reference) == ["created", "consent", "forwarded"]
    worker()  # running again sends nothing twice
    assert len(fake_provider.messages()) == 1


def test_ok_from_the_focal_point_accepts_and_tells_the_person(
    client: Any, phone: TwilioPhone, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    reference = ask_for_help(phone)
    worker()
    stranger = TwilioPhone(client, "+50688776655")
    reply = stranger.text(f"OK {reference}")
    assert "Buscar servicios" in reply  # anyone else just gets the normal flow
    assert case_by_reference(reference).status == "forwarded"
    other_focal_point = TwilioPhone(client, LOS_CHILES_1)
    assert "No encontramos el caso" in other_focal_point.text(f"OK {reference}")
    assert case_by_reference(reference).status == "forwarded"

    focal_point = TwilioPhone(client, UPALA_1)
    assert f"Caso {reference} aceptado" in focal_point.text(f"ok {reference.lower()}")
    accepted = case_by_reference(reference)
    assert accepted.status == "accepted" and accepted.accepted_at is not None
    worker()
    notices = sent_to(fake_provider, PERSON)
    assert notices == [f"Ruta: su solicitud {reference} esta en curso. Le contactaran pronto."]
    # The coordinator, whom the case has not reached, cannot take it.
    coordinator = TwilioPhone(client, CR_COORDINATOR)
    assert "No encontramos el caso" in coordinator.text(f"ACEPTO {reference}")


def test_no_notice_when_the_phone_is_shared(
    client: Any, phone: TwilioPhone, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    reference = ask_for_help(phone, shared="si")
    worker()
    TwilioPhone(client, UPALA_1).text(f"OK {reference}")
    worker()
    assert sent_to(fake_provider, PERSON) == []


def test_close_info_and_rating(
    client: Any, phone: TwilioPhone, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    reference = ask_for_help(phone)
    worker()
    focal_point = TwilioPhone(client, UPALA_1)
    assert "Primero acepte" in focal_point.text(f"CERRAR {reference} 1")
    focal_point.text(f"OK {reference}")
    info = focal_point.text(f"INFO {reference}")
    assert "prioridad Normal" in info and "Upala" in info and "Horario seguro: por la tarde" in info
    assert PERSON in info  # the person agreed to be contacted
    assert "info_read" in case_events(reference)
    assert f"Caso {reference} cerrado" in focal_point.text(f"CERRAR {reference} 1")
    closed = case_by_reference(reference)
    assert closed.status == "closed" and closed.outcome == "successful"
    worker()
    assert "se cerro" in sent_to(fake_provider, PERSON)[-1]
    assert "Gracias" in phone.text("3")
    assert case_by_reference(reference).rating == 3
    assert case_events(reference)[-1] == "rated"


def test_no_acceptance_escalates_to_backup_then_coordinator(
    app: Flask,
    phone: TwilioPhone,
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
    clock: Clock,
) -> None:
    reference = ask_for_help(phone)
    worker()
    assert len(sent_to(fake_provider, UPALA_1)) == 1
    deadline = case_by_reference(reference).deadline_at
    assert deadline is not None and deadline - clock.now > timedelta(hours=23)
    clock.now += timedelta(hours=23)
    sweep()
    worker()
    assert sent_to(fake_provider, UPALA_2) == []  # not yet
    clock.now += timedelta(hours=2)
    assert sweep()["deadlines"] == 1
    worker()
    assert len(sent_to(fake_provider, UPALA_2)) == 1
    assert not case_by_reference(reference).overdue
    clock.now += timedelta(hours=25)
    sweep()
    worker()
    assert len(sent_to(fake_provider, CR_COORDINATOR)) == 1
    escalated = case_by_reference(reference)
    assert escalated.overdue and escalated.chain_position == 2
    assert case_events(reference).count("escalated") == 2
    # The coordinator is the end of the chain: no further alerts, however long.
    clock.now += timedelta(days=5)
    sweep()
    worker()
    assert len(fake_provider.messages()) == 3


def test_the_deadline_is_also_scheduled_with_rq(
    app: Flask, phone: TwilioPhone, worker: Any
) -> None:
    """A scan of the deadlines is scheduled for the moment the case's runs out (rounded up to
    a few seconds, so a batch of cases of one tier shares one job)."""
    from rq import Queue
    from rq.registry import ScheduledJobRegistry
    from rq.serializers import JSONSerializer

    from ruta.jobqueue import DEADLINE_SLOT

    reference = ask_for_help(phone)
    worker()
    queue = Queue(
        "ruta-test-high", connection=app.extensions["ruta.redis"], serializer=JSONSerializer
    )
    registry = ScheduledJobRegistry(queue=queue)
    checks = [
        registry.get_scheduled_time(job_id)
        for job_id in registry.get_job_ids()
        if (job := queue.fetch_job(job_id)) is not None
        and job.func_name.endswith("check_deadlines")
    ]
    deadline = case_by_reference(reference).deadline_at
    assert deadline is not None and len(checks) == 1
    assert deadline <= checks[0] < deadline + timedelta(seconds=DEADLINE_SLOT)


def test_pass_moves_the_case_to_the_next_in_the_chain(
    client: Any, phone: TwilioPhone, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    reference = ask_for_help(phone)
    worker()
    assert "pasado" in TwilioPhone(client, UPALA_1).text(f"PASAR {reference}")
    worker()
    assert len(sent_to(fake_provider, UPALA_2)) == 1


def test_redis_down_while_the_case_is_created(
    app: Flask,
    phone: TwilioPhone,
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
    clock: Clock,
) -> None:
    redis = app.extensions["ruta.redis"]
    app.extensions["ruta.redis"] = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    reference = ask_for_help(phone)  # the person still gets their reference
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(OutboxEvent)) == 1
        assert session.scalar(select(OutboxEvent.dispatched_at)) is None
    assert case_by_reference(reference).status == "new"
    app.extensions["ruta.redis"] = redis
    worker()
    assert fake_provider.messages() == []  # nothing was ever enqueued
    clock.now += timedelta(minutes=3)
    assert sweep()["events"] == 1
    worker()
    assert len(sent_to(fake_provider, UPALA_1)) == 1
    sweep()  # again: the event is dispatched, nothing more goes out
    worker()
    assert len(fake_provider.messages()) == 1


def test_provider_500_twice_then_200_delivers_one_alert(
    app: Flask, phone: TwilioPhone, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    fake_provider.script("twilio", [{"http_status": 500}, {"http_status": 500}])
    reference = ask_for_help(phone)
    for _ in range(3):
        worker()
        _run_scheduled_now(app)
    worker()
    assert len(sent_to(fake_provider, UPALA_1)) == 1
    assert case_by_reference(reference).status == "forwarded"
    with db.transaction() as session:
        attempts = session.scalar(select(Message.attempts).where(Message.purpose == "alert"))
    assert attempts == 3


def test_permanent_error_alerts_the_next_focal_point(
    phone: TwilioPhone, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    fake_provider.fail_number("twilio", UPALA_1, 21610)
    reference = ask_for_help(phone)
    worker()
    assert sent_to(fake_provider, UPALA_1) == []
    assert len(sent_to(fake_provider, UPALA_2)) == 1
    assert "undeliverable" in case_events(reference) and "escalated" in case_events(reference)


def test_undelivered_report_moves_the_alert_on(
    client: Any, phone: TwilioPhone, worker: Callable[[], None], fake_provider: FakeProviderServer
) -> None:
    from tests.conftest import PUBLIC_BASE_URL, sign

    reference = ask_for_help(phone)
    worker()
    sid = fake_provider.messages()[0]["id"]
    url = f"{PUBLIC_BASE_URL}/webhooks/twilio/status"

    def report(status: str) -> int:
        form = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "0" * 32}
        headers = {"X-Twilio-Signature": sign(url, form)}
        return int(client.post("/webhooks/twilio/status", data=form, headers=headers).status_code)

    assert report("sent") == 204
    assert report("undelivered") == 204
    assert report("sent") == 204  # late and out of order: ignored
    worker()
    assert len(sent_to(fake_provider, UPALA_2)) == 1
    with db.transaction() as session:
        status = session.scalar(select(Message.status).where(Message.provider_message_id == sid))
    assert status == "failed"
    assert "undeliverable" in case_events(reference)
    forged = client.post(
        "/webhooks/twilio/status", data={"MessageSid": sid, "MessageStatus": "delivered"}
    )
    assert forged.status_code == 403


def test_two_simultaneous_requests_make_one_case(app: Flask, phone: TwilioPhone) -> None:
    for text in ("HOLA", "2", "si", "1", "upala", "no", "si", "no"):
        phone.text(text)
    replies: list[str] = []
    first, second = phone.params("2"), phone.params("2")

    def deliver(params: dict[str, str]) -> None:
        from tests.conftest import reply_of

        with app.test_client() as client:
            replies.append(reply_of(TwilioPhone(client).post(params).data))

    threads = [threading.Thread(target=deliver, args=(p,)) for p in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 1
    reference = case_reference()
    assert any(reference in r for r in replies)
    # A later request while the case is open says so at once, with the same reference.
    phone.text("HOLA")
    again = phone.text("2")
    assert reference in again and "abierta" in again


def test_not_safe_gives_emergency_numbers_at_once_and_an_immediate_case(
    phone: TwilioPhone,
) -> None:
    phone.text("HOLA")
    phone.text("2")
    reply = phone.text("no")
    # The numbers at once; no reference yet: nobody would read a case without consent.
    assert "911" in reply and "eferencia" not in reply
    for text in ("1", "upala", "no", "si", "no"):
        phone.text(text)
    done = phone.text("4")
    reference = done.split("Referencia: ")[1][:5]
    completed = case_by_reference(reference)
    assert completed.urgency == "immediate" and completed.consent_at is not None


def case_reference() -> str:
    with db.transaction() as session:
        return str(session.scalar(select(Case.reference)))


def _run_scheduled_now(app: Flask) -> None:
    """Move retries waiting for their backoff to the queue (the clock jumps forward)."""
    from rq import Queue
    from rq.registry import ScheduledJobRegistry
    from rq.serializers import JSONSerializer

    for name in ("ruta-test-high", "ruta-test-default"):
        queue = Queue(name, connection=app.extensions["ruta.redis"], serializer=JSONSerializer)
        registry = ScheduledJobRegistry(queue=queue)
        for job_id in registry.get_job_ids():
            job = queue.fetch_job(job_id)
            if job is not None and not job.func_name.endswith("check_deadline"):
                registry.remove(job_id)
                queue.enqueue_job(job)


def test_an_expired_agreement_stops_referrals_to_that_organisation(
    phone: TwilioPhone,
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
    clock: Clock,
) -> None:
    from sqlalchemy import update

    from ruta.models import DataSharingAgreement

    with db.transaction() as session:  # the backup's organisation: agreement expired
        session.execute(
            update(DataSharingAgreement)
            .where(DataSharingAgreement.reference == "DEMO-ACUERDO-2")
            .values(expires_on=datetime(2020, 1, 1).date())
        )
    try:
        reference = ask_for_help(phone)
        worker()
        clock.now += timedelta(hours=25)
        sweep()
        worker()
        assert sent_to(fake_provider, UPALA_2) == []
        assert len(sent_to(fake_provider, CR_COORDINATOR)) == 1
        assert "skipped" in case_events(reference)
    finally:
        with db.transaction() as session:
            session.execute(
                update(DataSharingAgreement)
                .where(DataSharingAgreement.reference == "DEMO-ACUERDO-2")
                .values(expires_on=datetime(2030, 12, 31).date())
            )


def test_alerts_over_africastalking_and_its_delivery_reports(
    app: Flask,
    client: Any,
    phone: TwilioPhone,
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
) -> None:
    from tests.conftest import AT_TOKEN

    app.config["RUTA_OUTBOUND_PROVIDER"] = "africastalking"
    reference = ask_for_help(phone)
    worker()
    alert = fake_provider.messages("africastalking")
    assert [m["to"] for m in alert] == [UPALA_1] and reference in alert[0]["body"]
    url = f"/webhooks/africastalking/{AT_TOKEN}/delivery"
    form = {
        "id": alert[0]["id"],
        "status": "Failed",
        "phoneNumber": UPALA_1,
        "failureReason": "UserInBlackList",
        "networkCode": "63902",
    }
    assert client.post(url, data=form).status_code == 204
    assert client.post("/webhooks/africastalking/wrong/delivery", data=form).status_code == 404
    worker()
    assert [m["to"] for m in fake_provider.messages("africastalking")] == [UPALA_1, UPALA_2]
    with db.transaction() as session:
        error = session.scalar(
            select(Message.error_code).where(Message.provider_message_id == alert[0]["id"])
        )
    assert error == "UserInBlackList"


def test_policy_deadlines_by_tier_country_and_category() -> None:
    from ruta.policy import Policy, check

    policy = Policy(
        {
            "deadlines": {
                "default": {"immediate": 15, "urgent": 240, "standard": 1440},
                "countries": {"PA": {"standard": 720}},
                "categories": {"PA/children": {"standard": 60}},
            },
            "category_tiers": {"safety": "urgent"},
            "emergency_numbers": {"default": "911", "GT": "110"},
        }
    )
    assert policy.deadline("immediate", "CR", "health") == timedelta(minutes=15)
    assert policy.deadline("standard", "CR", "health") == timedelta(hours=24)
    assert policy.deadline("standard", "PA", "health") == timedelta(hours=12)
    assert policy.deadline("standard", "PA", "children") == timedelta(hours=1)
    assert policy.tier("safety", safe=True) == "urgent"
    assert policy.tier("health", safe=False) == "immediate"
    assert policy.emergency_numbers("GT") == "110" and policy.emergency_numbers("XX") == "911"
    assert check({"deadlines": {"default": {}}, "emergency_numbers": {}}) == [
        "deadlines.default.immediate is missing",
        "deadlines.default.urgent is missing",
        "deadlines.default.standard is missing",
        "emergency_numbers.default is missing",
    ]


def test_case_history_is_append_only_in_order(
    client: Any, phone: TwilioPhone, worker: Callable[[], None]
) -> None:
    reference = ask_for_help(phone)
    worker()
    focal_point = TwilioPhone(client, UPALA_1)
    focal_point.text(f"OK {reference}")
    focal_point.text(f"INFO {reference}")
    focal_point.text(f"CERRAR {reference} 2")
    assert case_events(reference) == [
        "created",
        "consent",
        "forwarded",
        "accepted",
        "person_notified",
        "info_read",
        "closed",
        "person_notified",
    ]
    assert case_by_reference(reference).outcome == "unsuccessful"


def test_focal_points_read_names_never_codes_in_spanish_and_english(
    app: Flask,
    client: Any,
    worker: Callable[[], None],
    fake_provider: FakeProviderServer,
    clock: Clock,
) -> None:
    """Test 9 of issue 10 walked through the whole loop: first alert (es), escalation alert (en),
    acceptance, INFO and closing, and an immediate case; every text names, no code."""
    from ruta.models import FocalPoint
    from tests.conftest import code_leaks, texts_to_focal_points

    with db.transaction() as session:
        backup = session.scalar(select(FocalPoint).where(FocalPoint.name.like("Respaldo Upala%")))
        assert backup is not None
        languages, backup.languages = backup.languages, ["en"]
    try:
        reference = ask_for_help(TwilioPhone(client), kind="2", times="1")  # documents, morning
        worker()
        (alert,) = sent_to(fake_provider, UPALA_1)
        assert "Tipo: Documentos y tramites." in alert and "Prioridad: Normal." in alert
        clock.now += timedelta(days=2)
        sweep()
        worker()
        (escalated,) = sent_to(fake_provider, UPALA_2)
        assert "Type: Documents and procedures." in escalated and "Priority: Normal." in escalated
        focal_point = TwilioPhone(client, UPALA_2)
        assert f"Case {reference} accepted" in focal_point.text(f"OK {reference}")
        info = focal_point.text(f"INFO {reference}")
        assert "priority Normal" in info and "type Documents and procedures" in info
        assert "Safe times: mornings." in info
        assert f"Case {reference} closed" in focal_point.text(f"CLOSE {reference} 1")

        urgent = ask_for_help(TwilioPhone(client, "+50688001199"), safe="no", kind="5", times="4")
        worker()
        alert = next(a for a in sent_to(fake_provider, UPALA_1) if urgent in a)
        assert "Tipo: Niñez y familia." in alert and "Prioridad: Inmediata." in alert
        upala_1 = TwilioPhone(client, UPALA_1)
        upala_1.text(f"OK {urgent}")
        info = upala_1.text(f"INFO {urgent}")
        assert "prioridad Inmediata" in info and "Horario seguro: a cualquier hora." in info

        texts = texts_to_focal_points(fake_provider)
        assert len(texts) >= 10
        assert code_leaks(texts) == []
        # The check finds a code where one is: the old alert's way of writing kind and tier.
        leaked = "Type: DOCUMENTS. Priority: standard."
        assert code_leaks([leaked]) == [
            f"'DOCUMENTS' in {leaked!r}",
            f"'standard' in {leaked!r}",
        ]
    finally:
        with db.transaction() as session:
            restored = session.get(FocalPoint, backup.id)
            assert restored is not None
            restored.languages = languages
