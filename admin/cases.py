"""Admin section: Cases."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from admin.permissions import requires

bp = Blueprint("admin_cases", __name__, url_prefix="/admin/cases")
NAV = [("cases.view", "admin_cases.index", "Cases")]


@bp.get("/")
@requires("cases.view")
def index() -> ResponseReturnValue:
    return render_template("admin/section_pending.html", title="Cases")
