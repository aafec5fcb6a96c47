"""Referrals: a case reaches the focal points of its routing chain, who accept, close or pass it
by SMS; a case nobody accepts in time climbs the chain up to the country's coordinator.

Everything here runs inside the caller's transaction and returns the ids of work to hand to RQ
after commit (outbox events to dispatch, messages to send): committed work is never lost, and a
Redis outage only delays it until the sweeper finds it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from flows.services import CaseRequest
from ruta import policy as policies
from ruta import routing, taxonomy
from ruta.models import (
    OPEN_CASE_STATUSES,
    AuditEntry,
    Case,
    CaseEvent,
    CaseStatus,
    Contact,
    Direction,
    FocalPoint,
    Message,
    MessagePurpose,
    MessageStatus,
    Municipality,
    OutboxEvent,
    Referral,
    UnroutedRequest,
)

#: How long after closing a case the person's 1, 2 or 3 counts as a rating.
RATING_WINDOW = timedelta(days=3)
#: The safe-times answer that means "do not contact me" (flows/actions/cases.py).
NO_CONTACT = "never"
FORWARD = "forward"

# A verb, then a reference (five letters or digits), then any word (CERRAR's outcome, checked
# later so a wrong one is asked again rather than sent to the flows). The verb alone is a
# command too: OK lists the focal point's cases, AYUDA their commands.
COMMAND = re.compile(r"^\s*([A-Za-z]+)(?:\s+([A-Za-z0-9]{5})(?:\s+(\S+))?)?\s*$")
OUTCOMES = {"1": "successful", "2": "unsuccessful"}
VERBS = {
    "OK": "accept",
    "ACEPTO": "accept",
    "ACCEPT": "accept",
    "CERRAR": "close",
    "CLOSE": "close",
    "PASAR": "pass",
    "PASS": "pass",
    "INFO": "info",
    "AYUDA": "help",
    "HELP": "help",
}
#: At most this many references of each kind in the reply to a bare OK (within 2 SMS).
LISTED = 10

# Texts to focal points (reference, kind of help, place and urgency only: never a name, number or
# story; kinds, tiers and safe times by their names in ruta/taxonomy.py, never their codes) and
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
        "passed_cannot_accept": "Usted paso el caso {ref} al siguiente punto focal: ya no puede"
        " aceptarlo.",
        "close_outcome": "Responda CERRAR {ref} 1 (resuelto) o CERRAR {ref} 2 (no resuelto).",
        "open_cases": "Sus casos. Esperan OK: {waiting}. Aceptados: {held}. Responda OK, CERRAR"
        " o INFO y la referencia.",
        "no_open_cases": "No tiene casos abiertos. AYUDA: comandos.",
        "commands": "Ruta, puntos focales: OK ref: aceptar. CERRAR ref 1: resuelto, CERRAR ref 2:"
        " no resuelto. PASAR ref: al siguiente. INFO ref: detalles. OK solo: sus casos."
        " HOLA: menu publico.",
        "phone_shared": "telefono compartido",
        "phone_own": "telefono propio",
        "phone_unknown": "telefono compartido: sin dato",
        "holder_only": "solo para quien acepte el caso",
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
        "passed_cannot_accept": "You passed case {ref} to the next focal point: you can no"
        " longer accept it.",
        "close_outcome": "Reply CLOSE {ref} 1 (resolved) or CLOSE {ref} 2 (not resolved).",
        "open_cases": "Your cases. Waiting for OK: {waiting}. Accepted: {held}. Reply OK, CLOSE"
        " or INFO and the reference.",
        "no_open_cases": "You have no open cases. HELP: commands.",
        "commands": "Ruta, focal points: OK ref: accept. CLOSE ref 1: resolved, CLOSE ref 2: not"
        " resolved. PASS ref: to the next. INFO ref: details. OK alone: your cases."
        " HELLO: public menu.",
        "phone_shared": "shared phone",
        "phone_own": "own phone",
        "phone_unknown": "shared phone: unknown",
        "holder_only": "only for whoever accepts the case",
    },
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


def alert_text(session: Session, case: Case, language: str) -> str:
    """The alert a focal point reads: reference, kind of help, place and urgency, in words."""
    municipality = session.get(Municipality, case.municipality_id) if case.municipality_id else None
    return text(
        language,
        "alert",
        ref=case.reference,
        category=taxonomy.kind_name(session, case.category_code, language),
        place=municipality.name if municipality else "-",
        tier=taxonomy.tier_name(case.urgency, language),
    )


def record(session: Session, case: Case, kind: str, actor: str, **data: Any) -> None:
    session.add(CaseEvent(case_id=case.id, kind=kind, actor=actor, data=data))


def country_of(e164: str) -> str | None:
    """The ISO country of a number, or None for numbers of no country: satellite and other
    non-geographic ones (+881, +882, +883: region "001") and unknown codes ("ZZ")."""
    # Calling codes are prefix-free: the first of 1 to 3 digits that is one names the country
    # alone unless it is shared (+1, +7, +44...), as region_code_for_number decides it too;
    # only a shared one needs the number parsed (40 µs, on every message).
    digits = e164[1:]
    plain = e164[:1] == "+" and digits[:1] != "0" and digits.isdigit()
    for length in (1, 2, 3) if plain else ():
        regions = COUNTRY_CODE_TO_REGION_CODE.get(int(digits[:length]))
        if regions is not None:
            # What parse refuses (a national number under 2 or over 17 digits) is parsed.
            if len(regions) == 1 and 2 <= len(digits) - length <= 17:
                return regions[0] if regions[0] in phonenumbers.SUPPORTED_REGIONS else None
            break
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        return None
    return region if region in phonenumbers.SUPPORTED_REGIONS else None


# --- opening -----------------------------------------------------------------------------


def open_case(
    session: Session,
    request: CaseRequest,
    *,
    contact_id: int | None,
    now: datetime,
    policy: policies.Policy,
    reference: str,
) -> tuple[Case | None, Work]:
    """Create the person's case or complete their open one; forward it once it has consent.

    With consent the routing is resolved again: the case records the organisations it may reach
    (what the consent covered); if nobody can receive it now, nothing is stored but the unmet
    need, and the caller tells the person the truth (None)."""
    case = open_case_of(session, contact_id, lock=True) if contact_id is not None else None
    if case is not None and case.status != CaseStatus.NEW.value:
        return case, Work()  # already forwarded: updates go through ``update_open_case``
    municipality = (
        session.scalar(select(Municipality).where(Municipality.code == request.municipality))
        if request.municipality
        else None
    )
    tier = policy.tier(request.category, request.safe)
    route = None
    if request.consent and municipality is not None:
        route = routing.resolve(
            session, municipality.id, request.category, municipality.country, now.date()
        )
        if not route.reaches_anyone:
            if contact_id is not None:
                record_unrouted(
                    session,
                    municipality.code,
                    request.category,
                    tier=tier,
                    channel=request.channel,
                    now=now,
                )
            return None, Work()
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
    else:
        if request.category != "safety" or case.category_code == "safety":
            case.category_code = request.category
        if tier == "immediate" or case.urgency != "immediate":
            case.urgency = tier
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
    if request.consent and case.consent_at is None and route is not None:
        case.consent_at = now
        case.consent_channel = request.channel
        case.consent_wording = request.consent_wording
        case.consent_scope = route.organization_ids()
        record(
            session,
            case,
            "consent",
            "person",
            wording=request.consent_wording,
            organizations=case.consent_scope,
        )
    if (
        case.consent_at is not None
        and case.municipality_id is not None
        and not _forward_pending(session, case.id)
    ):
        work.outbox_ids.append(_forward_event(session, case, 0, now).id)
    return case, work


def _forward_pending(session: Session, case_id: int) -> bool:
    """The case already waits for the drain: a second event would alert the same focal points
    again once the first had moved the case on (a request repeated before its hand-over)."""
    pending = select(OutboxEvent.id).where(
        OutboxEvent.case_id == case_id,
        OutboxEvent.kind == FORWARD,
        OutboxEvent.dispatched_at.is_(None),
    )
    return session.scalar(pending.limit(1)) is not None


def record_unrouted(
    session: Session, municipality: str, category: str, *, tier: str, channel: str, now: datetime
) -> None:
    """Count a request nobody could receive, for the figures; nothing about the person."""
    place = session.scalar(select(Municipality).where(Municipality.code == municipality))
    session.add(
        UnroutedRequest(
            municipality_id=place.id if place else None,
            country=place.country if place else None,
            category_code=category,
            urgency=tier,
            channel=channel,
            created_at=now,
        )
    )


def open_case_of(session: Session, contact_id: int | None, *, lock: bool = False) -> Case | None:
    if contact_id is None:
        return None
    query = select(Case).where(Case.contact_id == contact_id, Case.status.in_(OPEN_CASE_STATUSES))
    return session.scalar(query.with_for_update() if lock else query)


STATE_WORDS = {
    "es": {
        CaseStatus.NEW.value: "recibida",
        CaseStatus.FORWARDED.value: "enviada, esperando respuesta",
        CaseStatus.ACCEPTED.value: "aceptada, en curso",
    },
    "en": {
        CaseStatus.NEW.value: "received",
        CaseStatus.FORWARDED.value: "sent, waiting for an answer",
        CaseStatus.ACCEPTED.value: "accepted, in progress",
    },
}


def state_words(case: Case, language: str) -> str:
    return STATE_WORDS.get(language, STATE_WORDS["es"]).get(case.status, case.status)


def update_open_case(
    session: Session,
    contact_id: int,
    *,
    shared_phone: bool | None,
    safe_times: str | None,
    note: str | None,
    now: datetime,
) -> Case | None:
    """The person changes how they may be contacted, or adds a note: each a case event. A phone
    others read stops every notice to them at once, including the ones already queued."""
    case = open_case_of(session, contact_id, lock=True)
    if case is None:
        return None
    if shared_phone is not None and shared_phone != case.shared_phone:
        case.shared_phone = shared_phone
        record(session, case, "contact_updated", "person", shared_phone=shared_phone)
        if shared_phone:
            dropped = suppress_queued_notices(session, contact_id)
            if dropped:
                record(session, case, "notices_dropped", "system", count=dropped)
    if safe_times is not None and safe_times != case.safe_times:
        case.safe_times = safe_times
        case.contact_ok = case.consent_at is not None and safe_times != NO_CONTACT
        record(session, case, "contact_updated", "person", safe_times=safe_times)
    if note:
        stamp = now.strftime("%Y-%m-%d %H:%M UTC")
        case.description = f"{case.description}\n[{stamp}] {note}" if case.description else note
        record(session, case, "note_added", "person")
    return case


def suppress_queued_notices(session: Session, contact_id: int) -> int:
    """Notices to the person not yet handed to a provider are never sent."""
    queued = session.scalars(
        select(Message).where(
            Message.contact_id == contact_id,
            Message.purpose == MessagePurpose.NOTICE.value,
            Message.status == MessageStatus.QUEUED.value,
        )
    ).all()
    for message in queued:
        message.status = MessageStatus.SUPPRESSED.value
    return len(queued)


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


def chain_positions(session: Session, case: Case) -> list[list[FocalPoint]]:
    """The focal points of the case's chain by position; the coordinators come after these."""
    return routing.chain(session, case.municipality_id, case.category_code)


def recipients(session: Session, case: Case, position: int, now: datetime) -> list[FocalPoint]:
    """Who receives the case at ``position``: active, with an agreement in force, and of an
    organisation the person's consent covered."""
    positions = chain_positions(session, case)
    if position < len(positions):
        candidates = positions[position]
    elif position == len(positions):
        candidates = routing.coordinators(session, case.country)
    else:
        return []
    found = routing.eligible(candidates, routing.organizations_in_force(session, now.date()))
    if case.consent_scope is not None:
        covered = set(case.consent_scope)
        outside = [fp.id for fp in found if fp.organization_id not in covered]
        if outside:
            record(
                session,
                case,
                "not_covered",
                "system",
                position=position,
                focal_points=outside,
                reason="organisation not named in the consent",
            )
        found = [fp for fp in found if fp.organization_id in covered]
    return found


def outbound_channel(config: dict[str, Any]) -> str:
    configured = config.get("RUTA_OUTBOUND_PROVIDER")
    if configured:
        return str(configured)
    return "twilio" if config.get("TWILIO_ACCOUNT_SID") else "africastalking"


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
#
# A registered, active focal point's number: a command word with a reference is always a
# command. A bare word (OK, AYUDA...) is the focal point's command too, unless they are in the
# middle of a conversation with the flows (texting as a person): there it answers the flows
# (OK is a yes, AYUDA the flow's help). Everything else goes to the flows as for anyone.


@dataclass
class Answer:
    """A focal point's command answered. ``about_case_id`` names the case whose person the reply
    describes (an INFO reply), so erasing the person blanks the reply too."""

    text: str
    work: Work = field(default_factory=Work)
    about_case_id: int | None = None


def _reached(session: Session, fp: FocalPoint, case: Case) -> bool:
    """The case was alerted to ``fp`` (or they hold it): only then may they act on it."""
    if case.accepted_by_id == fp.id:
        return True
    return (
        session.scalar(
            select(Referral.id)
            .where(Referral.case_id == case.id, Referral.focal_point_id == fp.id)
            .limit(1)
        )
        is not None
    )


def _passed_by(session: Session, fp: FocalPoint, case: Case) -> bool:
    return (
        session.scalar(
            select(CaseEvent.id)
            .where(
                CaseEvent.case_id == case.id,
                CaseEvent.kind == "escalated",
                CaseEvent.actor == f"focal_point:{fp.id}",
            )
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


class Sender(Protocol):
    """Who sent a message: a ``Contact``, or the webhook's ``ContactRow``."""

    id: int
    language: str | None
    rating_asked_at: datetime | None


def is_command(body: str) -> bool:
    """Whether ``body`` has the shape of a focal point's command (a verb, maybe a reference):
    only then is the sender looked up among the focal points."""
    match = COMMAND.match(body)
    return match is not None and match.group(1).upper() in VERBS


def handle_command(
    session: Session,
    contact: Sender,
    body: str,
    *,
    now: datetime,
    channel: str,
    in_conversation: Callable[[], bool] = lambda: False,
) -> Answer | None:
    """A focal point's SMS command, or None for anything else (it then goes to the flows).
    ``in_conversation()``: the sender is in the middle of a flow, where a bare word belongs
    (asked only for a bare word)."""
    match = COMMAND.match(body)
    verb = VERBS.get(match.group(1).upper()) if match else None
    if match is None or verb is None:
        return None
    ref, outcome = (match.group(2) or "").upper(), match.group(3)
    if not ref and in_conversation():
        return None
    fp = session.scalar(
        select(FocalPoint).where(FocalPoint.contact_id == contact.id, FocalPoint.active.is_(True))
    )
    if fp is None:
        return None
    lang = fp.languages[0] if fp.languages else "es"
    if verb == "help":
        return Answer(text(lang, "commands"))
    if not ref:
        return Answer(_open_references(session, fp, lang))
    case = session.scalar(select(Case).where(Case.reference == ref).with_for_update())
    if verb == "info":
        return _info(session, fp, case, ref, lang, now)
    if case is None or not _reached(session, fp, case):
        return Answer(text(lang, "not_yours", ref=ref))
    if verb == "accept":
        return _accept(session, fp, case, lang, now, channel)
    if verb == "close":
        return _close(session, fp, case, lang, outcome, now, channel)
    return _pass(session, fp, case, lang, now)


def _open_references(session: Session, fp: FocalPoint, lang: str) -> str:
    """The cases alerted to ``fp`` still waiting for an OK (not those they passed on), and the
    ones they hold."""
    alerted = select(Referral.case_id).where(Referral.focal_point_id == fp.id)
    passed = select(CaseEvent.case_id).where(
        CaseEvent.kind == "escalated", CaseEvent.actor == f"focal_point:{fp.id}"
    )
    waiting = session.scalars(
        select(Case.reference)
        .where(
            Case.status == CaseStatus.FORWARDED.value,
            Case.id.in_(alerted),
            Case.id.not_in(passed),
        )
        .order_by(Case.created_at)
    ).all()
    held = session.scalars(
        select(Case.reference)
        .where(Case.status == CaseStatus.ACCEPTED.value, Case.accepted_by_id == fp.id)
        .order_by(Case.created_at)
    ).all()
    if not waiting and not held:
        return text(lang, "no_open_cases")

    def listed(references: Sequence[str]) -> str:
        shown = " ".join(references[:LISTED]) or "-"
        return shown + (f" +{len(references) - LISTED}" if len(references) > LISTED else "")

    return text(lang, "open_cases", waiting=listed(waiting), held=listed(held))


def _accept(
    session: Session, fp: FocalPoint, case: Case, lang: str, now: datetime, channel: str
) -> Answer:
    ref = case.reference
    if case.status == CaseStatus.ACCEPTED.value and case.accepted_by_id == fp.id:
        return Answer(text(lang, "accepted", ref=ref))
    if case.status != CaseStatus.FORWARDED.value:
        return Answer(
            text(lang, "taken" if case.status == "accepted" else "already_closed", ref=ref)
        )
    if _passed_by(session, fp, case):
        # Whoever passed it said they cannot take it; the backup being alerted must get it.
        return Answer(text(lang, "passed_cannot_accept", ref=ref))
    case.status, case.accepted_by_id, case.accepted_at = "accepted", fp.id, now
    case.deadline_at = None
    record(session, case, "accepted", f"focal_point:{fp.id}")
    work = Work(message_ids=notify_person(session, case, "person_accepted", now, channel))
    return Answer(text(lang, "accepted", ref=ref), work)


def _close(
    session: Session,
    fp: FocalPoint,
    case: Case,
    lang: str,
    outcome: str | None,
    now: datetime,
    channel: str,
) -> Answer:
    ref = case.reference
    if case.status == CaseStatus.CLOSED.value:
        return Answer(text(lang, "already_closed", ref=ref))
    if case.status != CaseStatus.ACCEPTED.value:
        return Answer(text(lang, "must_accept", ref=ref))
    if case.accepted_by_id != fp.id:
        return Answer(text(lang, "taken", ref=ref))
    if outcome not in OUTCOMES:
        return Answer(text(lang, "close_outcome", ref=ref))  # closes nothing until it is known
    case.status, case.closed_at, case.deadline_at = "closed", now, None
    case.outcome = OUTCOMES[outcome]
    record(session, case, "closed", f"focal_point:{fp.id}", outcome=case.outcome)
    ids = notify_person(session, case, "person_closed", now, channel)
    if ids:
        ask_rating(session, case, now)
    return Answer(text(lang, "closed", ref=ref), Work(message_ids=ids))


def _pass(session: Session, fp: FocalPoint, case: Case, lang: str, now: datetime) -> Answer:
    ref = case.reference
    if case.status != CaseStatus.FORWARDED.value:
        return Answer(
            text(lang, "taken" if case.status == "accepted" else "already_closed", ref=ref)
        )
    if _passed_by(session, fp, case):
        return Answer(text(lang, "passed", ref=ref))  # once: a second PASAR skips nobody
    work = escalate(session, case, now=now, reason="passed", actor=f"focal_point:{fp.id}")
    return Answer(text(lang, "passed", ref=ref), work)


def _info(
    session: Session, fp: FocalPoint, case: Case | None, ref: str, lang: str, now: datetime
) -> Answer:
    """The case's details for whoever holds it, while it is open (the number only if the person
    agreed to be contacted), or for a coordinator the case has reached (never the number).
    Anyone else gets the same answer whether the case exists or not. Every try is audited."""
    actor = f"focal_point:{fp.id}"
    holder = (
        case is not None
        and case.status == CaseStatus.ACCEPTED.value
        and case.accepted_by_id == fp.id
    )
    overseer = (
        case is not None
        and fp.is_coordinator
        and case.status in OPEN_CASE_STATUSES
        and _reached(session, fp, case)
    )
    person = (
        session.get(Contact, case.contact_id)
        if holder and case is not None and case.contact_ok and case.contact_id
        else None
    )
    if case is None:
        reason = "no such case"
    elif case.status == CaseStatus.CLOSED.value:
        reason = "closed"
    elif not _reached(session, fp, case):
        reason = "not reached"
    else:
        reason = "held" if holder else "overseen" if overseer else "not the holder"
    allowed = holder or overseer
    if case is not None:
        record(
            session,
            case,
            "info_read" if allowed else "info_refused",
            actor,
            reason=reason,
            number_shown=person is not None,
        )
    session.add(
        AuditEntry(
            actor=actor,
            action="case.info" if allowed else "case.info_refused",
            object_type="case",
            object_id=ref,
            detail={"via": "sms", "reason": reason, "number_shown": person is not None},
        )
    )
    if not allowed or case is None:
        return Answer(text(lang, "not_yours", ref=ref))
    if person is not None:
        shared = (
            "phone_unknown"
            if case.shared_phone is None
            else "phone_shared"
            if case.shared_phone
            else "phone_own"
        )
        phone = f"{person.phone} ({text(lang, shared)})"
        times = taxonomy.safe_time_name(case.safe_times, lang)
    else:
        phone, times = text(lang, "no_contact" if holder else "holder_only"), "-"
    municipality = session.get(Municipality, case.municipality_id) if case.municipality_id else None
    reply = text(
        lang,
        "info",
        ref=ref,
        tier=taxonomy.tier_name(case.urgency, lang),
        category=taxonomy.kind_name(session, case.category_code, lang),
        place=municipality.name if municipality else "-",
        age=_age(now - case.created_at, lang),
        times=times,
        phone=phone,
    )
    return Answer(reply, about_case_id=case.id)


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


RATINGS = ("1", "2", "3")


def ask_rating(session: Session, case: Case, now: datetime) -> None:
    """The closing notice asked the person to rate the help: their next 1, 2 or 3 is looked up
    as a rating (``Contact.rating_asked_at``), within ``RATING_WINDOW``."""
    case.rating_requested_at = now
    if case.contact_id is not None:
        session.execute(
            update(Contact).where(Contact.id == case.contact_id).values(rating_asked_at=now)
        )


def may_be_rating(contact: Sender, body: str, now: datetime) -> bool:
    """A 1, 2 or 3 from someone asked to rate within the window: worth ``handle_rating``."""
    asked = contact.rating_asked_at
    return asked is not None and asked >= now - RATING_WINDOW and body.strip() in RATINGS


def handle_rating(session: Session, contact: Sender, body: str, *, now: datetime) -> str | None:
    """A 1, 2 or 3 shortly after a closing notice rates the help received."""
    if body.strip() not in RATINGS:
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
        # Rated already, or the window has passed: the hint goes, and the query with it.
        session.execute(
            update(Contact).where(Contact.id == contact.id).values(rating_asked_at=None)
        )
        return None
    case.rating = int(body.strip())
    record(session, case, "rated", "person", rating=case.rating)
    return text(contact.language or "es", "thanks")
