"""Admin section: Focal points."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from admin.permissions import requires

bp = Blueprint("admin_routing", __name__, url_prefix="/admin/routing")
NAV = [("routing.view", "admin_routing.index", "Focal points")]


@bp.get("/")
@requires("routing.view")
def index() -> ResponseReturnValue:
    return render_template("admin/section_pending.html", title="Focal points")
