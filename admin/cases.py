"""Admin section: Cases. The inbox, the case page with its timeline, and the actions on a case.

Who sees what is decided in one place, ``visible_cases``: admins every case, coordinators the
cases of their country, focal points the cases sent to them. A case outside the user's scope
answers 404, so its existence is not confirmed. Every view of a case page, every change and every
reveal of the person's number is audited; the number is shown only in the response to an explicit
"reveal" and only when the person agreed to be contacted.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import Select, false, func, or_, select
from sqlalchemy.orm import Session

from admin import case_alerts, timeline
from admin.audit import audit
from admin.i18n import word
from admin.permissions import requires
from admin.routing import HELP_CATEGORIES
from ruta import case_actions, clock, referrals
from ruta import policy as policies
from ruta.db import db
from ruta.jobqueue import hand_over
from ruta.models import (
    OPEN_CASE_STATUSES,
    Case,
    CaseEvent,
    CaseNote,
    CaseStatus,
    FocalPoint,
    Municipality,
    Referral,
    Role,
    Tier,
)
from workers import readiness

bp = Blueprint("admin_cases", __name__, url_prefix="/admin/cases")
NAV = [("cases.view", "admin_cases.index", _l("Cases"))]
PAGE_SIZE = 50
#: A note is for a colleague, not a file: long enough for a phone call's summary.
MAX_NOTE = 2000
#: What ``ruta.case_actions`` says when it refuses, for the catalogue (its English is the msgid).
REFUSALS = (
    _l("the case was already accepted"),
    _l("the case is closed"),
    _l("the case has not been forwarded yet: reassign it to a focal point first"),
    _l("choose an outcome"),
    _l("the case was already closed"),
    _l("accept the case first"),
    _l("the person has not consented to share the case"),
    _l("choose a focal point of the case's country"),
    _l("choose a focal point of the case's chain or its country's coordination"),
    _l("that focal point is not active"),
    _l("that focal point's organisation has no data-sharing agreement in force"),
    _l("the person's consent does not cover that focal point's organisation"),
    _l("the person did not agree to be contacted"),
    _l("the person's number is no longer stored"),
    _l("choose a focal point"),
)
#: The list filters a link (the dashboard's) may set, besides the selects.
FILTERS = ("status", "tier", "municipality", "category", "alert", "overdue", "q")


def scope(query: Select[Any], user: Any) -> Select[Any]:
    """Restrict a query over ``Case`` to the cases ``user`` may see."""
    role = Role(user.role)
    if role is Role.ADMIN:
        return query
    if role is Role.COORDINATOR:
        return query.where(Case.country == user.country if user.country else false())
    if role is Role.FOCAL_POINT and user.focal_point_id is not None:
        fp = user.focal_point_id
        sent = select(Referral.case_id).where(Referral.focal_point_id == fp)
        return query.where(
            or_(Case.id.in_(sent), Case.accepted_by_id == fp, Case.assigned_focal_point_id == fp)
        )
    return query.where(false())


def visible_cases(user: Any) -> Select[Case]:
    return scope(select(Case), user)


def _case_or_404(session: Session, reference: str, *, lock: bool = False) -> Case:
    query = visible_cases(current_user).where(Case.reference == normalise_reference(reference))
    case = session.scalar(query.with_for_update() if lock else query)
    if case is None:
        abort(404)
    return case


def _is_overdue(case: Case, now: datetime) -> bool:
    if case.status == CaseStatus.CLOSED.value:
        return False
    return case.overdue or (case.deadline_at is not None and case.deadline_at <= now)


def ago(delta: timedelta) -> str:
    """How long ago, as a phrase ("hace 5 min", "5 min ago"; under a minute, "just now")."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return _("just now")
    if minutes < 60:
        span = _("%(n)s min", n=minutes)
    elif minutes < 48 * 60:
        span = _("%(n)s h", n=minutes // 60)
    else:
        span = ngettext("%(num)s day", "%(num)s days", minutes // (24 * 60))
    return _("%(age)s ago", age=span)


def normalise_reference(text: str) -> str:
    """A reference as people write it: any case, spaces or dashes anywhere ("r7k 2p"). A
    reference is letters and digits only; anything else (a NUL byte PostgreSQL refuses) goes."""
    return re.sub(r"[^0-9A-Za-z]+", "", text).upper()[:8]


def filtered(user: Any, args: Any, now: datetime) -> Select[Case]:
    """The cases of the inbox for its query string; the dashboard's counts use it too, so
    a count and the list it links to cannot disagree."""
    query = visible_cases(user)
    reference = normalise_reference(args.get("q", ""))
    if reference:
        query = query.where(Case.reference == reference)
    if args.get("status"):
        query = query.where(Case.status == args["status"])
    if args.get("tier"):
        query = query.where(Case.urgency == args["tier"])
    if args.get("category"):
        query = query.where(Case.category_code == args["category"])
    if args.get("municipality"):
        query = query.where(
            Case.municipality_id.in_(
                select(Municipality.id).where(Municipality.code == args["municipality"])
            )
        )
    if args.get("alert") == "failed":
        query = query.where(
            Case.status.in_(OPEN_CASE_STATUSES), Case.id.in_(case_alerts.failed_alerts())
        )
    if args.get("overdue") == "1":
        query = query.where(
            Case.status.in_(OPEN_CASE_STATUSES),
            or_(Case.overdue.is_(True), Case.deadline_at <= now),
        )
    return query


def _sending_problems() -> list[str]:
    """What running workers say stops them sending: then "forwarded" promises nothing yet."""
    return readiness.problems(
        current_app.extensions["ruta.redis"], current_app.config["RUTA_QUEUE_PREFIX"]
    )


def _actor() -> str:
    return f"user:{current_user.id}"


# --- the inbox -----------------------------------------------------------------------------


@bp.get("/")
@requires("cases.view")
def index() -> ResponseReturnValue:
    now = clock.now()
    args = request.args
    # NUL bytes out (PostgreSQL refuses them in a query); a code no case can have filters nothing.
    filters = {k: args.get(k, "").replace("\x00", "").strip()[:64] for k in FILTERS}
    filters["q"] = normalise_reference(filters["q"])
    page = max(1, args.get("page", 1, type=int) or 1)
    query = filtered(current_user, filters, now)
    with db.transaction() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        pages = max(1, -(-total // PAGE_SIZE))
        page = min(page, pages)
        cases = list(
            session.scalars(
                query.order_by(Case.created_at.desc(), Case.id.desc())
                .limit(PAGE_SIZE)
                .offset((page - 1) * PAGE_SIZE)
            )
        )
        places = {
            m.id: m
            for m in session.scalars(
                select(Municipality).where(
                    Municipality.id.in_({c.municipality_id for c in cases if c.municipality_id})
                )
            )
        }
        municipality_query = select(Municipality).order_by(Municipality.country, Municipality.name)
        if Role(current_user.role) is Role.COORDINATOR:
            municipality_query = municipality_query.where(
                Municipality.country == current_user.country
            )
        municipalities = list(session.scalars(municipality_query))
        codes = set(session.scalars(select(Case.category_code).distinct())) | set(HELP_CATEGORIES)
        categories = sorted(((code, word("kinds", code)) for code in codes), key=lambda c: c[1])
        failed = set(
            session.scalars(
                case_alerts.failed_alerts().where(Referral.case_id.in_([c.id for c in cases]))
                if cases
                else select(Case.id).where(false())
            )
        )
    rows = [
        {
            "reference": c.reference,
            "tier": word("tiers", c.urgency),
            "status": word("statuses", c.status),
            "category": word("kinds", c.category_code),
            "municipality": places[c.municipality_id].name if c.municipality_id else "-",
            "created_at": c.created_at,
            "country": c.country,
            "age": ago(now - c.created_at),
            "overdue": _is_overdue(c, now),
            "failed": c.id in failed and c.status in OPEN_CASE_STATUSES,
        }
        for c in cases
    ]
    return render_template(
        "admin/cases_index.html",
        sending_problems=_sending_problems(),
        rows=rows,
        filters=filters,
        kept={k: v for k, v in filters.items() if v},
        statuses=[(s.value, word("statuses", s.value)) for s in CaseStatus],
        tiers=[(t.value, word("tiers", t.value)) for t in Tier],
        municipalities=municipalities,
        categories=categories,
        page=page,
        pages=pages,
        total=total,
    )


# --- the case page -------------------------------------------------------------------------


def _render_case(
    session: Session,
    case: Case,
    *,
    revealed: str | None = None,
    refusal: str | None = None,
    note: str = "",
    note_error: str | None = None,
) -> str:
    now = clock.now()
    events = list(
        session.scalars(
            select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)
        )
    )
    names = {
        fp.id: fp.name
        for fp in session.scalars(
            select(FocalPoint).where(
                FocalPoint.id.in_(
                    {i for i in (case.assigned_focal_point_id, case.accepted_by_id) if i}
                )
            )
        )
    }
    municipality = session.get(Municipality, case.municipality_id) if case.municipality_id else None
    alerts = case_alerts.alert_rows(session, case)
    targets = (
        case_actions.reassign_targets(session, case, now)
        if case.status != CaseStatus.CLOSED.value
        else []
    )
    notes = list(
        session.scalars(select(CaseNote).where(CaseNote.case_id == case.id).order_by(CaseNote.id))
    )
    return render_template(
        "admin/cases_view.html",
        sending_problems=_sending_problems(),
        case=case,
        kind=word("kinds", case.category_code),
        tier=word("tiers", case.urgency),
        status=word("statuses", case.status),
        safe_times=word("safe_times", case.safe_times),
        consent_channel=word("channels", case.consent_channel),
        municipality=municipality,
        timeline=timeline.lines(session, case, events),
        alerts=alerts,
        unreached=case_alerts.unreached(alerts, case),
        names=names,
        targets=targets,
        overdue=_is_overdue(case, now),
        age=ago(now - case.created_at),
        outcomes=[(o, word("outcomes", o)) for o in case_actions.OUTCOMES],
        notes=notes,
        note=note,
        note_error=note_error,
        max_note=MAX_NOTE,
        revealed=revealed,
        refusal=refusal,
    )


def _no_store(page: str, status: int = 200) -> ResponseReturnValue:
    response = current_app.make_response((page, status))
    response.headers["Cache-Control"] = "no-store"  # the description and notes are on it
    return response


@bp.get("/<reference>")
@requires("cases.view")
def view(reference: str) -> ResponseReturnValue:
    with db.transaction() as session:
        case = _case_or_404(session, reference)
        notes = session.scalar(select(func.count()).where(CaseNote.case_id == case.id)) or 0
        # The notes are read with the page: the audit says how many were on it.
        audit(session, "case.view", "case", case.reference, notes=notes)
        page = _render_case(session, case)
    return _no_store(page)


def _act(reference: str, action: str, run: Any) -> ResponseReturnValue:
    """Lock the case, run the action, audit it, commit, hand the work to RQ."""
    reference = normalise_reference(reference)
    try:
        with db.transaction() as session:
            case = _case_or_404(session, reference, lock=True)
            work, detail = run(session, case)
            audit(session, f"case.{action}", "case", case.reference, **detail)
    except case_actions.Refused as refused:
        flash(_("Not done: %(reason)s.", reason=_(str(refused))))
        return redirect(url_for("admin_cases.view", reference=reference))
    hand_over(work)
    done = {
        "accept": _("Case %(ref)s accepted.", ref=reference),
        "close": _("Case %(ref)s closed.", ref=reference),
        "reassign": _("Case %(ref)s reassigned.", ref=reference),
    }
    flash(done[action])
    return redirect(url_for("admin_cases.view", reference=reference))


def _channel() -> str:
    return referrals.outbound_channel(current_app.config)


@bp.post("/<reference>/accept")
@requires("cases.act")
def accept(reference: str) -> ResponseReturnValue:
    def run(session: Session, case: Case) -> tuple[referrals.Work, dict[str, Any]]:
        fp = current_user.focal_point_id if Role(current_user.role) is Role.FOCAL_POINT else None
        work = case_actions.accept(
            session, case, focal_point_id=fp, actor=_actor(), now=clock.now(), channel=_channel()
        )
        return work, {"focal_point": fp}

    return _act(reference, "accept", run)


@bp.post("/<reference>/close")
@requires("cases.act")
def close(reference: str) -> ResponseReturnValue:
    outcome = request.form.get("outcome", "")

    def run(session: Session, case: Case) -> tuple[referrals.Work, dict[str, Any]]:
        work = case_actions.close(
            session, case, outcome=outcome, actor=_actor(), now=clock.now(), channel=_channel()
        )
        return work, {"outcome": outcome, "person_notified": bool(work.message_ids)}

    return _act(reference, "close", run)


@bp.post("/<reference>/reassign")
@requires("cases.act")
def reassign(reference: str) -> ResponseReturnValue:
    target = request.form.get("focal_point_id", type=int)

    def run(session: Session, case: Case) -> tuple[referrals.Work, dict[str, Any]]:
        if target is None:
            raise case_actions.Refused("choose a focal point")
        previous = case.accepted_by_id or case.assigned_focal_point_id
        work = case_actions.reassign(
            session,
            case,
            target,
            actor=_actor(),
            now=clock.now(),
            channel=_channel(),
            policy=policies.load(current_app.config.get("RUTA_POLICY_FILE")),
        )
        return work, {"to": target, "previous": previous}

    return _act(reference, "reassign", run)


@bp.post("/<reference>/reveal")
@requires("cases.reveal")
def reveal(reference: str) -> ResponseReturnValue:
    """Show the person's number on this response only (never stored in a page or a log)."""
    with db.transaction() as session:
        case = _case_or_404(session, reference, lock=True)
        try:
            number = case_actions.reveal_number(session, case, actor=_actor())
        except case_actions.Refused as refused:
            audit(session, "case.reveal", "case", case.reference, refused=str(refused))
            return _no_store(_render_case(session, case, refusal=_(str(refused))))
        audit(session, "case.reveal", "case", case.reference)
        page = _render_case(session, case, revealed=number)
    return _no_store(page)


@bp.post("/<reference>/notes")
@requires("cases.act")
def add_note(reference: str) -> ResponseReturnValue:
    """An internal note: encrypted, audited, only ever shown on this page."""
    body = (request.form.get("body") or "").strip()
    with db.transaction() as session:
        case = _case_or_404(session, reference, lock=True)
        error = None
        if not body:
            error = _("Write the note first.")
        elif len(body) > MAX_NOTE:
            error = _(
                "The note is %(n)s characters long; the most is %(max)s.", n=len(body), max=MAX_NOTE
            )
        if error:
            # The page is shown again with the text kept, so nothing typed is lost.
            audit(session, "case.view", "case", case.reference, note_refused=True)
            return _no_store(_render_case(session, case, note=body, note_error=error), 422)
        session.add(
            CaseNote(
                case_id=case.id,
                author_id=current_user.id,
                author=str(current_user.email),
                body=body,
                created_at=clock.now(),
            )
        )
        # The body stays out of the audit log: it is the note's own, encrypted, column.
        audit(session, "case.note", "case", case.reference, length=len(body))
        ref = case.reference
    flash(_("Note added to case %(ref)s.", ref=ref))
    return redirect(url_for("admin_cases.view", reference=ref, _anchor="notes"))
