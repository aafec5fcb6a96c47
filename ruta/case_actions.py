"""What a person handling a case does from the web admin: accept, reassign, close, reveal.

The same rules as the focal points' SMS commands (``ruta.referrals.handle_command``): the first
acceptance wins, only an accepted case is closed, the person hears back only if they agreed to be
contacted and the phone is theirs alone. Every function runs in the caller's transaction, records
a case event and returns the ``Work`` to hand to RQ after commit; an action that does not apply to
the case in its state raises ``Refused``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from ruta import policy as policies
from ruta import routing
from ruta.models import (
    Case,
    CaseStatus,
    Contact,
    Direction,
    FocalPoint,
    Message,
    MessagePurpose,
    MessageStatus,
    OutboxEvent,
    Referral,
)
from ruta.referrals import (
    Work,
    alert_text,
    chain_positions,
    notify_person,
    record,
)
from ruta.routing import organizations_in_force

OUTCOMES = ("successful", "unsuccessful")
#: The outbox kind of a reassignment; its alert is recorded at once (the event is born
#: dispatched) so ``referrals.dispatch`` never re-routes it through the chain.
REASSIGN = "reassign"


class Refused(Exception):
    """The action does not apply to the case as it stands; ``str()`` says why."""


def accept(
    session: Session,
    case: Case,
    *,
    focal_point_id: int | None,
    actor: str,
    now: datetime,
    channel: str,
) -> Work:
    """Accept a forwarded case (as ``focal_point_id`` when the user is a focal point)."""
    if case.status == CaseStatus.ACCEPTED.value and (
        focal_point_id is not None and case.accepted_by_id == focal_point_id
    ):
        return Work()  # accepting twice changes nothing
    if case.status == CaseStatus.ACCEPTED.value:
        raise Refused("the case was already accepted")
    if case.status == CaseStatus.CLOSED.value:
        raise Refused("the case is closed")
    if case.status != CaseStatus.FORWARDED.value:
        raise Refused("the case has not been forwarded yet: reassign it to a focal point first")
    case.status, case.accepted_by_id, case.accepted_at = (
        CaseStatus.ACCEPTED.value,
        focal_point_id,
        now,
    )
    case.deadline_at = None
    record(session, case, "accepted", actor, focal_point=focal_point_id, via="web")
    return Work(message_ids=notify_person(session, case, "person_accepted", now, channel))


def close(
    session: Session, case: Case, *, outcome: str, actor: str, now: datetime, channel: str
) -> Work:
    """Close an accepted case with its outcome; the person may rate the help (1-3)."""
    if outcome not in OUTCOMES:
        raise Refused("choose an outcome")
    if case.status == CaseStatus.CLOSED.value:
        raise Refused("the case was already closed")
    if case.status != CaseStatus.ACCEPTED.value:
        raise Refused("accept the case first")
    case.status, case.closed_at, case.deadline_at = CaseStatus.CLOSED.value, now, None
    case.outcome = outcome
    record(session, case, "closed", actor, outcome=outcome, via="web")
    ids = notify_person(session, case, "person_closed", now, channel)
    if ids:
        case.rating_requested_at = now
    return Work(message_ids=ids)


def chain_members(session: Session, case: Case) -> list[FocalPoint]:
    """The focal points the case's chain could send it to: every position of its chain
    (municipality and kind of help), then the coordinators of its country; nobody else's."""
    if case.country is None:
        return []
    members: list[FocalPoint] = []
    for position in chain_positions(session, case):
        members += [fp for fp in position if fp.country == case.country and fp not in members]
    members += [fp for fp in routing.coordinators(session, case.country) if fp not in members]
    return members


def reassign_targets(session: Session, case: Case, now: datetime) -> list[FocalPoint]:
    """Active focal points of the case's chain and country whose organisation may receive
    referrals and was covered by the person's consent, in chain order."""
    in_force = organizations_in_force(session, now.date())
    return [
        fp
        for fp in chain_members(session, case)
        if fp.active and fp.organization_id in in_force and covered(case, fp)
    ]


def covered(case: Case, fp: FocalPoint) -> bool:
    """Whether the person's consent named (or covered) the focal point's organisation."""
    return case.consent_scope is None or fp.organization_id in case.consent_scope


def reassign(
    session: Session,
    case: Case,
    focal_point_id: int,
    *,
    actor: str,
    now: datetime,
    channel: str,
    policy: policies.Policy,
) -> Work:
    """Send the case to one chosen focal point of its country, like an escalation would.

    The case goes back to *forwarded* (an acceptance is undone), the focal point gets a new
    alert (recorded now as a queued message, which the sweeper re-sends if RQ loses it) and a new
    deadline; if nobody accepts in time the case climbs its chain from where it stood.
    """
    if case.status == CaseStatus.CLOSED.value:
        raise Refused("the case is closed")
    if case.consent_at is None:
        raise Refused("the person has not consented to share the case")
    fp = session.get(FocalPoint, focal_point_id)
    if fp is None or fp.country != case.country:
        raise Refused("choose a focal point of the case's country")
    if fp not in chain_members(session, case):
        raise Refused("choose a focal point of the case's chain or its country's coordination")
    if not fp.active:
        raise Refused("that focal point is not active")
    if fp.organization_id not in organizations_in_force(session, now.date()):
        raise Refused("that focal point's organisation has no data-sharing agreement in force")
    if not covered(case, fp):
        raise Refused("the person's consent does not cover that focal point's organisation")
    event = OutboxEvent(
        kind=REASSIGN,
        case_id=case.id,
        payload={"position": case.chain_position, "focal_point_id": fp.id},
        priority="high" if case.urgency == "immediate" else "default",
        created_at=now,
        dispatched_at=now,
    )
    session.add(event)
    session.flush()
    language = fp.languages[0] if fp.languages else "es"
    message = Message(
        direction=Direction.OUTBOUND.value,
        channel=channel,
        contact_id=fp.contact_id,
        body=alert_text(session, case, language),
        status=MessageStatus.QUEUED.value,
        purpose=MessagePurpose.ALERT.value,
        created_at=now,
    )
    session.add(message)
    session.flush()
    session.add(
        Referral(
            case_id=case.id,
            event_id=event.id,
            focal_point_id=fp.id,
            message_id=message.id,
            position=case.chain_position,
            created_at=now,
        )
    )
    previous = case.accepted_by_id or case.assigned_focal_point_id
    case.status = CaseStatus.FORWARDED.value
    case.assigned_focal_point_id = fp.id
    case.accepted_by_id, case.accepted_at = None, None
    case.overdue = False
    work = Work(message_ids=[message.id])
    if case.chain_position < len(chain_positions(session, case)):
        case.deadline_at = now + policy.deadline(case.urgency, case.country, case.category_code)
        work.deadlines.append((case.id, case.deadline_at))
    else:
        case.deadline_at = None  # at the coordinator or past the chain: no one further up
    record(session, case, "reassigned", actor, focal_point=fp.id, previous=previous)
    return work


def reveal_number(session: Session, case: Case, *, actor: str) -> str:
    """The person's number, only if they agreed to be contacted; the read is a case event."""
    if not case.contact_ok:
        raise Refused("the person did not agree to be contacted")
    person = session.get(Contact, case.contact_id) if case.contact_id is not None else None
    if person is None:
        raise Refused("the person's number is no longer stored")
    record(session, case, "number_revealed", actor)
    return person.phone
