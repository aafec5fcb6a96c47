"""Admin section: Flows."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from admin.permissions import requires

bp = Blueprint("admin_flows", __name__, url_prefix="/admin/flows")
NAV = [("flows.view", "admin_flows.index", "Flows")]


@bp.get("/")
@requires("flows.view")
def index() -> ResponseReturnValue:
    return render_template("admin/section_pending.html", title="Flows")
