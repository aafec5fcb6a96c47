"""A case's history as sentences in the user's language: "Sent to the focal point of Upala
(María ...)", "Accepted by ...", never the event's raw data (``focal_points=[1]``).

Each event kind has its sentence here; who did it (``actor``: "person", "system", "provider",
"focal_point:3", "user:7") and whom it names (focal point ids in ``data``) are turned into names
with one query each for focal points, users and organisations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from admin.i18n import word
from ruta.models import Case, CaseEvent, FocalPoint, Municipality, Organization, User


@dataclass(frozen=True)
class Line:
    kind: str
    name: str  # the event's name ("Sent", "Enviada")
    sentence: str
    created_at: datetime


class _Names:
    """Names of the focal points, users and organisations the events mention."""

    def __init__(self, session: Session, events: list[CaseEvent]) -> None:
        fp_ids: set[int] = set()
        user_ids: set[int] = set()
        org_ids: set[int] = set()
        for event in events:
            data = event.data or {}
            for key in ("focal_point", "previous", "to"):
                if isinstance(data.get(key), int):
                    fp_ids.add(data[key])
            fp_ids.update(i for i in data.get("focal_points") or [] if isinstance(i, int))
            org_ids.update(i for i in data.get("organizations") or [] if isinstance(i, int))
            kind, _sep, ident = event.actor.partition(":")
            if ident.isdigit():
                (fp_ids if kind == "focal_point" else user_ids).add(int(ident))
        self.fps = {
            fp.id: fp.name
            for fp in session.scalars(select(FocalPoint).where(FocalPoint.id.in_(fp_ids)))
        }
        self.users = {
            u.id: u.email for u in session.scalars(select(User).where(User.id.in_(user_ids)))
        }
        self.orgs = {
            o.id: o.name
            for o in session.scalars(select(Organization).where(Organization.id.in_(org_ids)))
        }

    def fp(self, ident: Any) -> str:
        return self.fps.get(ident, _("a focal point no longer in the directory"))

    def fps_list(self, idents: Any) -> str:
        return ", ".join(self.fp(i) for i in idents or [])

    def actor(self, actor: str) -> str:
        kind, _sep, ident = actor.partition(":")
        if kind == "focal_point" and ident.isdigit():
            return self.fp(int(ident))
        if kind == "user" and ident.isdigit():
            return self.users.get(int(ident), _("a removed account"))
        if kind == "person":
            return _("the person")
        if kind == "provider":
            return _("the SMS provider")
        return _("Ruta")


def _escalated(data: dict[str, Any], who: str) -> str:
    reason = data.get("reason")
    step = int(data.get("position", 0)) + 1
    if reason == "deadline":
        return _("Nobody accepted in time: the request moved up to step %(step)s.", step=step)
    if reason == "passed":
        return _("%(who)s passed the request on to step %(step)s.", who=who, step=step)
    if reason == "undeliverable":
        return _("No alert reached anyone: the request moved up to step %(step)s.", step=step)
    return _("The request moved up to step %(step)s.", step=step)


def _sentence(event: CaseEvent, case: Case, place: str, names: _Names) -> str:
    data: dict[str, Any] = event.data or {}
    who = names.actor(event.actor)
    kind = event.kind
    if kind == "created":
        return _(
            "Request received by %(channel)s, urgency %(tier)s.",
            channel=word("channels", data.get("channel")),
            tier=word("tiers", data.get("tier") or case.urgency),
        )
    if kind == "consent":
        organizations = ", ".join(names.orgs.get(i, "?") for i in data.get("organizations") or [])
        if organizations:
            return _(
                "The person agreed to share the request with %(organizations)s.",
                organizations=organizations,
            )
        return _("The person agreed to share the request.")
    if kind == "forwarded":
        if data.get("coordinator"):
            return _(
                "Sent to the coordination (%(names)s).",
                names=names.fps_list(data.get("focal_points")),
            )
        return _(
            "Sent to the focal point of %(place)s (%(names)s).",
            place=place,
            names=names.fps_list(data.get("focal_points")),
        )
    if kind == "delivered":
        return _("The alert reached %(name)s's phone.", name=names.fp(data.get("focal_point")))
    if kind == "undeliverable":
        return _(
            "The alert to %(name)s could not be delivered.", name=names.fp(data.get("focal_point"))
        )
    if kind == "not_covered":
        return _(
            "Not sent to %(names)s: the person's consent did not name their organisation.",
            names=names.fps_list(data.get("focal_points")),
        )
    if kind == "skipped":
        return _(
            "Step %(step)s skipped: nobody there can receive it now.",
            step=int(data.get("position", 0)) + 1,
        )
    if kind == "unrouted":
        return _("Nobody can receive the request: no focal point and no coordination.")
    if kind == "escalated":
        return _escalated(data, who)
    if kind == "overdue":
        return _("Overdue: there is nobody further up the chain.")
    if kind == "accepted":
        if data.get("focal_point") is not None and event.actor.startswith("user:"):
            return _(
                "Accepted by %(name)s (recorded on the web by %(who)s).",
                name=names.fp(data["focal_point"]),
                who=who,
            )
        if data.get("via") == "web":
            return _("Accepted on the web by %(who)s.", who=who)
        return _("Accepted by %(who)s by SMS.", who=who)
    if kind == "reassigned":
        return _(
            "%(who)s reassigned the request to %(name)s.",
            who=who,
            name=names.fp(data.get("focal_point")),
        )
    if kind == "closed":
        outcome = word("outcomes", data.get("outcome"))
        if event.actor == "person":
            return _("Closed: %(outcome)s.", outcome=outcome)
        return _("Closed by %(who)s: %(outcome)s.", who=who, outcome=outcome)
    if kind == "contact_updated":
        if "safe_times" in data:
            return _(
                "The person gave safe times to be contacted: %(times)s.",
                times=word("safe_times", data.get("safe_times")),
            )
        return _("The person said whether the phone is shared.")
    if kind == "notices_dropped":
        return _(
            "%(count)s pending messages to the person were cancelled.", count=data.get("count", 0)
        )
    if kind == "note_added":
        return _("The person added details to the request.")
    if kind == "person_notified":
        if data.get("notice") == "person_accepted":
            return _("The person was told the request is being handled.")
        if data.get("notice") == "person_closed":
            return _("The person was told the request was closed and asked to rate the help.")
        return _("A message was sent to the person.")
    if kind == "rated":
        return _("The person rated the help %(rating)s of 3.", rating=data.get("rating"))
    if kind == "number_revealed":
        return _("%(who)s viewed the person's number.", who=who)
    if kind == "info_read":
        return _("%(who)s read the request's details by SMS.", who=who)
    if kind == "info_refused":
        return _("%(who)s asked for the request's details by SMS and was refused.", who=who)
    if kind == "anonymised":
        return _("The person's data was erased.")
    return _("Recorded by %(who)s.", who=who)


def lines(session: Session, case: Case, events: list[CaseEvent]) -> list[Line]:
    place = session.get(Municipality, case.municipality_id) if case.municipality_id else None
    names = _Names(session, events)
    place_name = place.name if place else _("an unknown municipality")
    return [
        Line(
            kind=event.kind,
            name=word("events", event.kind),
            sentence=_sentence(event, case, place_name, names),
            created_at=event.created_at,
        )
        for event in events
    ]
