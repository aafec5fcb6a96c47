"""The admin's first page: the work waiting for this user, one sentence a line, each a link to
the list that shows it.

Each line needs a permission (``admin.permissions``) and counts only what the user's role may
see: a coordinator their country, a focal point the cases sent to them. The counts come from the
same queries as the lists they link to (``admin.cases.filtered`` and the others' scopes), so the
number on the link is the number of rows behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from admin.broadcasts import _scoped as visible_broadcasts
from admin.cases import filtered
from admin.permissions import can, requires
from admin.questions import _visible as visible_questions
from admin.routing import HELP_CATEGORIES
from ruta import clock, routing
from ruta.db import db
from ruta.models import Broadcast, BroadcastStatus, CaseStatus, Question, QuestionStatus, Role

bp = Blueprint("admin_home", __name__, url_prefix="/admin")
NAV = [("dashboard", "admin_home.dashboard", _l("Home"))]


@dataclass(frozen=True)
class Line:
    key: str  # stable, for tests and styling
    count: int
    text: str
    url: str


def _count(session: Session, query: Select[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def _own_country() -> str | None:
    """The country a coordinator's lines cover; None for roles that see every country."""
    if Role(current_user.role) is Role.COORDINATOR:
        return str(current_user.country or "--")
    return None


def _case_lines(session: Session) -> list[Line]:
    now = clock.now()
    lines = []
    cases: list[tuple[str, dict[str, Any], Any]] = [
        (
            "unrouted",
            {"status": CaseStatus.NEW.value},
            lambda n: ngettext(
                "%(num)s request has reached nobody yet",
                "%(num)s requests have reached nobody yet",
                n,
            ),
        ),
        (
            "unaccepted",
            {"status": CaseStatus.FORWARDED.value},
            lambda n: ngettext(
                "%(num)s request waits for acceptance", "%(num)s requests wait for acceptance", n
            ),
        ),
        (
            "overdue",
            {"overdue": "1"},
            lambda n: ngettext("%(num)s request is overdue", "%(num)s requests are overdue", n),
        ),
        (
            "failed_alerts",
            {"alert": "failed"},
            lambda n: ngettext(
                "%(num)s open request has an alert that failed",
                "%(num)s open requests have an alert that failed",
                n,
            ),
        ),
    ]
    if Role(current_user.role) is Role.FOCAL_POINT:
        # Their list holds only what reached them, so "reached nobody" would always read 0.
        cases = [line for line in cases if line[0] != "unrouted"]
    for key, args, plural in cases:
        count = _count(session, filtered(current_user, args, now))
        lines.append(Line(key, count, plural(count), url_for("admin_cases.index", **args)))
    return lines


def _question_line(session: Session) -> Line:
    query = visible_questions(current_user).where(Question.status == QuestionStatus.OPEN.value)
    count = _count(session, query)
    return Line(
        "questions",
        count,
        ngettext(
            "%(num)s question waits for an answer", "%(num)s questions wait for an answer", count
        ),
        url_for("admin_questions.index", status=QuestionStatus.OPEN.value),
    )


def _routing_lines(session: Session) -> list[Line]:
    today = clock.now().date()
    kinds = routing.published_kinds(session) or list(HELP_CATEGORIES)
    found = routing.gaps(session, kinds, today, _own_country())
    url = url_for("admin_routing.index", _anchor="warnings")
    pending = [(a, days) for a, _name, days in found.expiring if a.id not in found.renewed]
    expired = sum(1 for _a, days in pending if days < 0)
    expiring = sorted(days for _a, days in pending if days >= 0)
    lines = [
        Line(
            "unrouted_places",
            len(found.unrouted),
            ngettext(
                "%(num)s municipality has a kind of help that reaches nobody",
                "%(num)s municipalities have a kind of help that reaches nobody",
                len(found.unrouted),
            ),
            url,
        ),
        Line(
            "no_coordinator",
            len(found.no_coordinator),
            ngettext(
                "%(num)s country has no coordination to receive requests",
                "%(num)s countries have no coordination to receive requests",
                len(found.no_coordinator),
            ),
            url,
        ),
        Line(
            "expiring_agreements",
            len(expiring),
            ngettext(
                "%(num)s data-sharing agreement expires within %(days)s days",
                "%(num)s data-sharing agreements expire within %(days)s days",
                len(expiring),
                days=routing.EXPIRY_WARNING.days,
            )
            + (
                ngettext(" (the first in %(num)s day)", " (the first in %(num)s days)", expiring[0])
                if expiring
                else ""
            ),
            url_for("admin_routing.index", _anchor="agreements"),
        ),
        Line(
            "expired_agreements",
            expired,
            ngettext(
                "%(num)s data-sharing agreement has expired",
                "%(num)s data-sharing agreements have expired",
                expired,
            ),
            url_for("admin_routing.index", _anchor="agreements"),
        ),
    ]
    return lines


def _broadcast_line(session: Session) -> Line:
    status = BroadcastStatus.AWAITING_APPROVAL.value
    count = _count(session, visible_broadcasts(select(Broadcast)).where(Broadcast.status == status))
    return Line(
        "broadcasts",
        count,
        ngettext("%(num)s notice waits for approval", "%(num)s notices wait for approval", count),
        url_for("admin_broadcasts.index", status=status),
    )


def work_lines() -> list[Line]:
    """The dashboard's lines for the current user (only those their role may see)."""
    lines: list[Line] = []
    with db.transaction() as session:
        if can(current_user, "cases.view"):
            lines += _case_lines(session)
        if can(current_user, "questions.view"):
            lines.append(_question_line(session))
        if can(current_user, "routing.view"):
            lines += _routing_lines(session)
        if can(current_user, "broadcasts.send"):
            lines.append(_broadcast_line(session))
    return lines


@bp.get("/")
@requires("dashboard")
def dashboard() -> ResponseReturnValue:
    lines = work_lines()
    return render_template(
        "admin/dashboard.html",
        waiting=[line for line in lines if line.count],
        clear=[line for line in lines if not line.count],
    )
