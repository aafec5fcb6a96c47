"""The admin's first page: what needs attention."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select

from admin.permissions import requires
from ruta.db import db
from ruta.models import Case, CaseStatus

bp = Blueprint("admin_home", __name__, url_prefix="/admin")
NAV = [("dashboard", "admin_home.dashboard", "Home")]


@bp.get("/")
@requires("dashboard")
def dashboard() -> ResponseReturnValue:
    with db.transaction() as session:
        overdue = session.scalar(
            select(func.count())
            .select_from(Case)
            .where(Case.overdue.is_(True), Case.status != CaseStatus.CLOSED.value)
        )
    return render_template("admin/dashboard.html", overdue=overdue or 0)
