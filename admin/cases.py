"""Admin section: Cases. The inbox, the case page with its timeline, and the actions on a case.

Who sees what is decided in one place, ``visible_cases``: admins every case, coordinators the
cases of their country, focal points the cases sent to them. A case outside the user's scope
answers 404, so its existence is not confirmed. Every view of a case page, every change and every
reveal of the person's number is audited; the number is shown only in the response to an explicit
"reveal" and only when the person agreed to be contacted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import Select, false, func, or_, select
from sqlalchemy.orm import Session

from admin import case_alerts
from admin.audit import audit
from admin.permissions import requires
from admin.routing import HELP_CATEGORIES
from ruta import case_actions, clock, referrals, taxonomy
from ruta import policy as policies
from ruta.db import db
from ruta.models import (
    OPEN_CASE_STATUSES,
    Case,
    CaseEvent,
    CaseStatus,
    FocalPoint,
    Municipality,
    Referral,
    Role,
    Tier,
)
from workers import readiness
from workers.jobs import hand_over

#: The admin is in English for now; names of kinds, tiers and safe times follow it.
ADMIN_LANGUAGE = "en"

bp = Blueprint("admin_cases", __name__, url_prefix="/admin/cases")
NAV = [("cases.view", "admin_cases.index", _l("Cases"))]
PAGE_SIZE = 50


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
    query = visible_cases(current_user).where(Case.reference == reference.upper())
    case = session.scalar(query.with_for_update() if lock else query)
    if case is None:
        abort(404)
    return case


def _is_overdue(case: Case, now: datetime) -> bool:
    if case.status == CaseStatus.CLOSED.value:
        return False
    return case.overdue or (case.deadline_at is not None and case.deadline_at <= now)


def age(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} d"


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
    filters = {k: args.get(k, "") for k in ("status", "tier", "municipality", "category")}
    overdue_only = args.get("overdue") == "1"
    page = max(1, args.get("page", 1, type=int) or 1)
    query = visible_cases(current_user)
    if filters["status"]:
        query = query.where(Case.status == filters["status"])
    if filters["tier"]:
        query = query.where(Case.urgency == filters["tier"])
    if filters["category"]:
        query = query.where(Case.category_code == filters["category"])
    if filters["municipality"]:
        query = query.join(Municipality, Municipality.id == Case.municipality_id).where(
            Municipality.code == filters["municipality"]
        )
    if overdue_only:
        query = query.where(
            Case.status.in_(OPEN_CASE_STATUSES),
            or_(Case.overdue.is_(True), Case.deadline_at <= now),
        )
    with db.transaction() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
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
        kinds = taxonomy.kind_names(session, ADMIN_LANGUAGE)
        codes = set(session.scalars(select(Case.category_code).distinct())) | set(HELP_CATEGORIES)
        categories = sorted(((code, kinds.get(code, code)) for code in codes), key=lambda c: c[1])
    rows = [
        {
            "reference": c.reference,
            "tier": taxonomy.tier_name(c.urgency, ADMIN_LANGUAGE),
            "status": c.status,
            "category": kinds.get(c.category_code, c.category_code),
            "municipality": places[c.municipality_id].name if c.municipality_id else "-",
            "age": age(now - c.created_at),
            "overdue": _is_overdue(c, now),
        }
        for c in cases
    ]
    return render_template(
        "admin/cases_index.html",
        sending_problems=_sending_problems(),
        rows=rows,
        filters=filters,
        overdue_only=overdue_only,
        statuses=[s.value for s in CaseStatus],
        tiers=[(t.value, taxonomy.tier_name(t.value, ADMIN_LANGUAGE)) for t in Tier],
        municipalities=municipalities,
        categories=categories,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        total=total,
    )


# --- the case page -------------------------------------------------------------------------


def _render_case(
    session: Session, case: Case, *, revealed: str | None = None, refusal: str | None = None
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
    return render_template(
        "admin/cases_view.html",
        sending_problems=_sending_problems(),
        case=case,
        kind=taxonomy.kind_name(session, case.category_code, ADMIN_LANGUAGE),
        tier=taxonomy.tier_name(case.urgency, ADMIN_LANGUAGE),
        safe_times=taxonomy.safe_time_name(case.safe_times, ADMIN_LANGUAGE),
        municipality=municipality,
        events=events,
        alerts=alerts,
        unreached=case_alerts.unreached(alerts, case),
        names=names,
        targets=targets,
        overdue=_is_overdue(case, now),
        age=age(now - case.created_at),
        outcomes=case_actions.OUTCOMES,
        revealed=revealed,
        refusal=refusal,
    )


@bp.get("/<reference>")
@requires("cases.view")
def view(reference: str) -> ResponseReturnValue:
    with db.transaction() as session:
        case = _case_or_404(session, reference)
        audit(session, "case.view", "case", case.reference)
        page = _render_case(session, case)
    response = current_app.make_response(page)
    response.headers["Cache-Control"] = "no-store"  # the description is on this page
    return response


def _act(reference: str, action: str, run: Any) -> ResponseReturnValue:
    """Lock the case, run the action, audit it, commit, hand the work to RQ."""
    try:
        with db.transaction() as session:
            case = _case_or_404(session, reference, lock=True)
            work, detail = run(session, case)
            audit(session, f"case.{action}", "case", case.reference, **detail)
    except case_actions.Refused as refused:
        flash(f"Not done: {refused}.")
        return redirect(url_for("admin_cases.view", reference=reference.upper()))
    hand_over(work)
    flash(f"Case {reference.upper()}: {action} done.")
    return redirect(url_for("admin_cases.view", reference=reference.upper()))


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
            return _render_case(session, case, refusal=str(refused))
        audit(session, "case.reveal", "case", case.reference)
        page = _render_case(session, case, revealed=number)
    response = current_app.make_response(page)
    response.headers["Cache-Control"] = "no-store"
    return response
