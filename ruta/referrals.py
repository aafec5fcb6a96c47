"""Referrals: a case reaches the focal points of its routing chain, who accept, close or pass it
by SMS; a case nobody accepts in time climbs the chain up to the country's coordinator.

Everything here runs inside the caller's transaction and returns the ids of work to hand to RQ
after commit (outbox events to dispatch, messages to send): committed work is never lost, and a
Redis outage only delays it until the sweeper finds it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from flows.services import CaseRequest
from ruta import policy as policies
from ruta.models import (
    OPEN_CASE_STATUSES,
    Case,
    CaseEvent,
    CaseStatus,
    Contact,
    DataSharingAgreement,
    Direction,
    FocalPoint,
    Message,
    MessagePurpose,
    MessageStatus,
    Municipality,
    OutboxEvent,
    Referral,
    RoutingChain,
)

#: How long after closing a case the person's 1, 2 or 3 counts as a rating.
RATING_WINDOW = timedelta(days=3)
FORWARD = "forward"

COMMAND = re.compile(r"^\s*([A-Za-z]+)\s+([A-Za-z0-9]{5})(?:\s+([12]))?\s*$")
VERBS = {
    "OK": "accept",
    "ACEPTO": "accept",
    "ACCEPT": "accept",
    "CERRAR": "close",
    "CLOSE": "close",
    "PASAR": "pass",
    "PASS": "pass",
    "INFO": "info",
}

# Texts to focal points (reference, codes and place only: never a name, number or story) and
# neutral notices to people.
TEXTS: dict[str, dict[str, str]] = {
    "es": {
        "alert": "Ruta: solicitud {ref}. Tipo: {category}. Lugar: {place}. Prioridad: {tier}."
        " Responda OK {ref} para aceptar.",
        "accepted": "Caso {ref} aceptado. CERRAR {ref} 1 (resuelto) o 2 (no resuelto) al"
        " terminar. INFO {ref} para detalles.",
        "taken": "El caso {ref} ya fue aceptado por otra persona.",
        "not_yours": "No encontramos el caso {ref} entre los suyos.",
        "closed": "Caso {ref} cerrado.",
        "already_closed": "El caso {ref} ya estaba cerrado.",
        "must_accept": "Primero acepte el caso: OK {ref}.",
        "passed": "Caso {ref} pasado al siguiente punto focal.",
        "info": "{ref}: prioridad {tier}, tipo {category}, lugar {place}, hace {age}."
        " Horario seguro: {times}. Contacto: {phone}.",
        "no_contact": "no autorizado",
        "person_accepted": "Ruta: su solicitud {ref} esta en curso. Le contactaran pronto.",
        "person_closed": "Ruta: su solicitud {ref} se cerro. ¿Le sirvio? Responda 1 (poco),"
        " 2 (algo) o 3 (mucho).",
        "thanks": "Gracias por su respuesta.",
    },
    "en": {
        "alert": "Ruta: request {ref}. Type: {category}. Place: {place}. Priority: {tier}."
        " Reply OK {ref} to accept.",
        "accepted": "Case {ref} accepted. CLOSE {ref} 1 (resolved) or 2 (not resolved) when"
        " done. INFO {ref} for details.",
        "taken": "Case {ref} was already accepted by someone else.",
        "not_yours": "Case {ref} is not among yours.",
        "closed": "Case {ref} closed.",
        "already_closed": "Case {ref} was already closed.",
        "must_accept": "Accept the case first: OK {ref}.",
        "passed": "Case {ref} passed to the next focal point.",
        "info": "{ref}: priority {tier}, type {category}, place {place}, {age} old."
        " Safe times: {times}. Contact: {phone}.",
        "no_contact": "not authorised",
        "person_accepted": "Ruta: your request {ref} is in progress. Someone will contact you.",
        "person_closed": "Ruta: your request {ref} was closed. Did it help? Reply 1 (a little),"
        " 2 (some) or 3 (a lot).",
        "thanks": "Thank you for your answer.",
    },
}
TIER_LABELS = {
    "es": {"immediate": "INMEDIATA", "urgent": "URGENTE", "standard": "NORMAL"},
    "en": {"immediate": "IMMEDIATE", "urgent": "URGENT", "standard": "STANDARD"},
}


@dataclass
class Work:
    """What to hand to RQ once the transaction has committed."""

    outbox_ids: list[int] = field(default_factory=list)
    message_ids: list[int] = field(default_factory=list)
    deadlines: list[tuple[int, datetime]] = field(default_factory=list)

    def merge(self, other: Work) -> None:
        self.outbox_ids += other.outbox_ids
        self.message_ids += other.message_ids
        self.deadlines += other.deadlines


def text(language: str, key: str, **values: Any) -> str:
    return TEXTS.get(language, TEXTS["es"])[key].format(**values)


def record(session: Session, case: Case, kind: str, actor: str, **data: Any) -> None:
    session.add(CaseEvent(case_id=case.id, kind=kind, actor=actor, data=data))


def country_of(e164: str) -> str | None:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        return None


# --- opening -----------------------------------------------------------------------------


def open_case(
    session: Session,
    request: CaseRequest,
    *,
    contact_id: int | None,
    now: datetime,
    policy: policies.Policy,
    reference: str,
) -> tuple[Case, Work]:
    """Create the person's case or complete their open one; forward it once it has consent."""
    case = None
    if contact_id is not None:
        case = session.scalar(
            select(Case)
            .where(Case.contact_id == contact_id, Case.status.in_(OPEN_CASE_STATUSES))
            .with_for_update()
        )
    municipality = (
        session.scalar(select(Municipality).where(Municipality.code == request.municipality))
        if request.municipality
        else None
    )
    tier = policy.tier(request.category, request.safe)
    if case is None:
        case = Case(
            reference=reference,
            contact_id=contact_id,
            category_code=request.category,
            urgency=tier,
            status=CaseStatus.NEW.value,
            created_at=now,
        )
        session.add(case)
        session.flush()
        record(session, case, "created", "person", tier=tier, channel=request.channel)
    elif case.status == CaseStatus.NEW.value:
        if request.category != "safety" or case.category_code == "safety":
            case.category_code = request.category
        if tier == "immediate" or case.urgency != "immediate":
            case.urgency = tier
    if case.status != CaseStatus.NEW.value:
        return case, Work()  # already forwarded: a second request returns the same reference
    if municipality is not None:
        case.municipality_id, case.country = municipality.id, municipality.country
    if request.description:
        case.description = request.description
    if request.shared_phone is not None:
        case.shared_phone = request.shared_phone
    if request.safe_times:
        case.safe_times = request.safe_times
    case.contact_ok = request.contact_ok
    work = Work()
    if request.consent and case.consent_at is None:
        case.consent_at = now
        case.consent_channel = request.channel
        case.consent_wording = request.consent_wording
        record(session, case, "consent", "person", wording=request.consent_wording)
    if case.consent_at is not None and case.municipality_id is not None:
        work.outbox_ids.append(_forward_event(session, case, 0, now).id)
    return case, work


def _forward_event(session: Session, case: Case, position: int, now: datetime) -> OutboxEvent:
    priority = "high" if case.urgency == "immediate" else "default"
    event = OutboxEvent(
        kind=FORWARD,
        case_id=case.id,
        payload={"position": position},
        priority=priority,
        created_at=now,
    )
    session.add(event)
    session.flush()
    return event


# --- routing -----------------------------------------------------------------------------


def in_force(session: Session, organization_id: int, today: date) -> bool:
    return (
        session.scalar(
            select(DataSharingAgreement.id)
            .where(
                DataSharingAgreement.organization_id == organization_id,
                DataSharingAgreement.expires_on >= today,
            )
            .limit(1)
        )
        is not None
    )


def chain_positions(session: Session, case: Case) -> list[list[FocalPoint]]:
    """The focal points of the case's chain by position; the coordinators come after these."""
    chain = session.scalar(
        select(RoutingChain).where(
            RoutingChain.municipality_id == case.municipality_id,
            RoutingChain.category_code == case.category_code,
        )
    )
    if chain is None:
        return []
    positions: dict[int, list[FocalPoint]] = {}
    for step in chain.steps:
        positions.setdefault(step.position, []).append(step.focal_point)
    return [positions[p] for p in sorted(positions)]


def recipients(session: Session, case: Case, position: int, now: datetime) -> list[FocalPoint]:
    positions = chain_positions(session, case)
    if position < len(positions):
        candidates = positions[position]
    elif position == len(positions):
        candidates = list(
            session.scalars(
                select(FocalPoint).where(
                    FocalPoint.is_coordinator.is_(True), FocalPoint.country == case.country
                )
            )
        )
    else:
        return []
    return [
        fp for fp in candidates if fp.active and in_force(session, fp.organization_id, now.date())
    ]


def outbound_channel(config: dict[str, Any]) -> str:
    configured = config.get("RUTA_OUTBOUND_PROVIDER")
    if configured:
        return str(configured)
    return "twilio" if config.get("TWILIO_ACCOUNT_SID") else "africastalking"


def dispatch(
    session: Session,
    event_id: int,
    *,
    now: datetime,
    policy: policies.Policy,
    channel: str,
) -> Work:
    """Turn a forward event into one recorded alert per recipient (idempotent)."""
    event = session.get(OutboxEvent, event_id, with_for_update=True)
    if event is None:
        return Work()
    if event.dispatched_at is not None:
        # Run again (a worker died, a retry): send what is still queued, create nothing.
        queued = session.scalars(
            select(Message.id)
            .join(Referral, Referral.message_id == Message.id)
            .where(Referral.event_id == event.id, Message.status == MessageStatus.QUEUED.value)
        )
        return Work(message_ids=list(queued))
    event.dispatched_at = now
    case = session.get(Case, event.case_id, with_for_update=True)
    position = int(event.payload.get("position", 0))
    if case is None or case.status not in (CaseStatus.NEW.value, CaseStatus.FORWARDED.value):
        return Work()
    if case.status == CaseStatus.FORWARDED.value and position != case.chain_position:
        return Work()  # a stale event: the case has moved on
    coordinator_stage = len(chain_positions(session, case))
    found: list[FocalPoint] = []
    while position <= coordinator_stage:
        found = recipients(session, case, position, now)
        if found:
            break
        record(session, case, "skipped", "system", position=position, reason="no recipient")
        position += 1
    work = Work()
    case.chain_position = position
    if not found:
        case.overdue = True
        case.deadline_at = None
        record(session, case, "unrouted", "system", reason="no focal point or coordinator")
        return work
    language = "es"
    municipality = session.get(Municipality, case.municipality_id) if case.municipality_id else None
    for fp in found:
        lang = fp.languages[0] if fp.languages else language
        body = text(
            lang,
            "alert",
            ref=case.reference,
            category=case.category_code.upper(),
            place=municipality.name if municipality else "-",
            tier=TIER_LABELS.get(lang, TIER_LABELS["es"])[case.urgency],
        )
        message = Message(
            direction=Direction.OUTBOUND.value,
            channel=channel,
            contact_id=fp.contact_id,
            body=body,
            status=MessageStatus.QUEUED.value,
            purpose=MessagePurpose.ALERT.value,
        )
        session.add(message)
        session.flush()
        session.add(
            Referral(
                case_id=case.id,
                event_id=event.id,
                focal_point_id=fp.id,
                message_id=message.id,
                position=position,
                created_at=now,
            )
        )
        work.message_ids.append(message.id)
    case.status = CaseStatus.FORWARDED.value
    case.assigned_focal_point_id = found[0].id
    if position < coordinator_stage:
        case.deadline_at = now + policy.deadline(case.urgency, case.country, case.category_code)
        work.deadlines.append((case.id, case.deadline_at))
    else:
        case.deadline_at = None  # the coordinator is the end of the line
    record(
        session,
        case,
        "forwarded",
        "system",
        position=position,
        focal_points=[fp.id for fp in found],
        coordinator=position == coordinator_stage,
    )
    return work


def escalate(session: Session, case: Case, *, now: datetime, reason: str, actor: str) -> Work:
    """Move the case to the next position of its chain; past the end, flag it overdue."""
    coordinator_stage = len(chain_positions(session, case))
    if case.chain_position >= coordinator_stage:
        case.overdue = True
        case.deadline_at = None
        record(session, case, "overdue", actor, reason=reason)
        return Work()
    case.chain_position += 1
    case.deadline_at = None
    if case.chain_position == coordinator_stage:
        case.overdue = True
    record(session, case, "escalated", actor, reason=reason, position=case.chain_position)
    return Work(outbox_ids=[_forward_event(session, case, case.chain_position, now).id])


def check_deadline(session: Session, case_id: int, *, now: datetime) -> Work:
    case = session.get(Case, case_id, with_for_update=True)
    if (
        case is None
        or case.status != CaseStatus.FORWARDED.value
        or case.deadline_at is None
        or case.deadline_at > now
    ):
        return Work()
    return escalate(session, case, now=now, reason="deadline", actor="system")


def alert_failed(session: Session, message_id: int, *, now: datetime, reason: str) -> Work:
    """An alert that cannot reach its focal point moves the case on at once."""
    referral = session.scalar(select(Referral).where(Referral.message_id == message_id))
    if referral is None:
        return Work()
    case = session.get(Case, referral.case_id, with_for_update=True)
    assert case is not None
    record(
        session, case, "undeliverable", "system", focal_point=referral.focal_point_id, reason=reason
    )
    if case.status != CaseStatus.FORWARDED.value or referral.position != case.chain_position:
        return Work()
    others = session.scalars(
        select(Message.status)
        .join(Referral, Referral.message_id == Message.id)
        .where(Referral.event_id == referral.event_id, Message.id != message_id)
    ).all()
    # An alert not sent because its focal point opted out reaches nobody either.
    unreached = (MessageStatus.FAILED.value, MessageStatus.SUPPRESSED.value)
    if any(status not in unreached for status in others):
        return Work()  # another focal point at this position may still answer
    return escalate(session, case, now=now, reason="undeliverable", actor="system")


def alert_delivered(session: Session, message_id: int) -> None:
    referral = session.scalar(select(Referral).where(Referral.message_id == message_id))
    if referral is not None:
        case = session.get(Case, referral.case_id)
        assert case is not None
        record(session, case, "delivered", "provider", focal_point=referral.focal_point_id)


# --- focal points answer -----------------------------------------------------------------


def _may_act(session: Session, fp: FocalPoint, case: Case) -> bool:
    if fp.is_coordinator and fp.country == case.country:
        return True
    return (
        session.scalar(
            select(Referral.id)
            .where(Referral.case_id == case.id, Referral.focal_point_id == fp.id)
            .limit(1)
        )
        is not None
    )


def _age(delta: timedelta, language: str) -> str:
    hours = int(delta.total_seconds() // 3600)
    if hours < 1:
        return f"{int(delta.total_seconds() // 60)} min"
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} {'dias' if language == 'es' else 'days'}"


def handle_command(
    session: Session, contact: Contact, body: str, *, now: datetime, channel: str
) -> tuple[str, Work] | None:
    """A focal point's SMS command, or None for anything else (it then goes to the flows)."""
    match = COMMAND.match(body)
    if match is None or match.group(1).upper() not in VERBS:
        return None
    fp = session.scalar(
        select(FocalPoint).where(FocalPoint.contact_id == contact.id, FocalPoint.active.is_(True))
    )
    if fp is None:
        return None
    verb, ref, outcome = VERBS[match.group(1).upper()], match.group(2).upper(), match.group(3)
    lang = fp.languages[0] if fp.languages else "es"
    case = session.scalar(select(Case).where(Case.reference == ref).with_for_update())
    if case is None or not _may_act(session, fp, case):
        return text(lang, "not_yours", ref=ref), Work()
    actor = f"focal_point:{fp.id}"
    work = Work()
    if verb == "accept":
        if case.status == CaseStatus.ACCEPTED.value and case.accepted_by_id == fp.id:
            return text(lang, "accepted", ref=ref), work
        if case.status != CaseStatus.FORWARDED.value:
            return text(
                lang, "taken" if case.status == "accepted" else "already_closed", ref=ref
            ), work
        case.status, case.accepted_by_id, case.accepted_at = "accepted", fp.id, now
        case.deadline_at = None
        record(session, case, "accepted", actor)
        work.message_ids += notify_person(session, case, "person_accepted", now, channel)
        return text(lang, "accepted", ref=ref), work
    if verb == "close":
        if case.status == CaseStatus.CLOSED.value:
            return text(lang, "already_closed", ref=ref), work
        if case.status != CaseStatus.ACCEPTED.value:
            return text(lang, "must_accept", ref=ref), work
        case.status, case.closed_at, case.deadline_at = "closed", now, None
        case.outcome = {"1": "successful", "2": "unsuccessful"}.get(outcome or "")
        record(session, case, "closed", actor, outcome=case.outcome)
        ids = notify_person(session, case, "person_closed", now, channel)
        if ids:
            case.rating_requested_at = now
        work.message_ids += ids
        return text(lang, "closed", ref=ref), work
    if verb == "pass":
        if case.status != CaseStatus.FORWARDED.value:
            return text(
                lang, "taken" if case.status == "accepted" else "already_closed", ref=ref
            ), work
        work.merge(escalate(session, case, now=now, reason="passed", actor=actor))
        return text(lang, "passed", ref=ref), work
    # info: every read is audited
    record(session, case, "info_read", actor)
    person = session.get(Contact, case.contact_id) if case.contact_id else None
    municipality = session.get(Municipality, case.municipality_id) if case.municipality_id else None
    reply = text(
        lang,
        "info",
        ref=ref,
        tier=TIER_LABELS.get(lang, TIER_LABELS["es"])[case.urgency],
        category=case.category_code.upper(),
        place=municipality.name if municipality else "-",
        age=_age(now - case.created_at, lang),
        times=case.safe_times or "-",
        phone=person.phone if person is not None and case.contact_ok else text(lang, "no_contact"),
    )
    return reply, work


def notify_person(session: Session, case: Case, key: str, now: datetime, channel: str) -> list[int]:
    """One neutral message to the person, only if they agreed and the phone is theirs alone."""
    if case.contact_id is None or not case.contact_ok or case.shared_phone is not False:
        return []
    person = session.get(Contact, case.contact_id)
    if person is None or person.opted_out:
        return []
    message = Message(
        direction=Direction.OUTBOUND.value,
        channel=channel,
        contact_id=person.id,
        body=text(person.language or "es", key, ref=case.reference),
        status=MessageStatus.QUEUED.value,
        purpose=MessagePurpose.NOTICE.value,
        created_at=now,
    )
    session.add(message)
    session.flush()
    record(session, case, "person_notified", "system", notice=key)
    return [message.id]


def handle_rating(session: Session, contact: Contact, body: str, *, now: datetime) -> str | None:
    """A 1, 2 or 3 shortly after a closing notice rates the help received."""
    if body.strip() not in ("1", "2", "3"):
        return None
    case = session.scalar(
        select(Case)
        .where(
            Case.contact_id == contact.id,
            Case.status == CaseStatus.CLOSED.value,
            Case.rating.is_(None),
            Case.rating_requested_at.is_not(None),
            Case.rating_requested_at >= now - RATING_WINDOW,
        )
        .order_by(Case.closed_at.desc())
        .limit(1)
    )
    if case is None:
        return None
    case.rating = int(body.strip())
    record(session, case, "rated", "person", rating=case.rating)
    return text(contact.language or "es", "thanks")
