"""The admin's first page: what needs attention."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, or_, select

from admin.cases import visible_cases
from admin.permissions import can, requires
from ruta import clock
from ruta.db import db
from ruta.models import OPEN_CASE_STATUSES, Case

bp = Blueprint("admin_home", __name__, url_prefix="/admin")
NAV = [("dashboard", "admin_home.dashboard", _l("Home"))]


@bp.get("/")
@requires("dashboard")
def dashboard() -> ResponseReturnValue:
    overdue = 0
    if can(current_user, "cases.view"):
        # The same "overdue" as the inbox's filter, over the cases this user may see.
        query = visible_cases(current_user).where(
            Case.status.in_(OPEN_CASE_STATUSES),
            or_(Case.overdue.is_(True), Case.deadline_at <= clock.now()),
        )
        with db.transaction() as session:
            overdue = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return render_template("admin/dashboard.html", overdue=overdue)
