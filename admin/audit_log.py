"""Admin section: Audit log."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from admin.permissions import requires

bp = Blueprint("admin_audit", __name__, url_prefix="/admin/audit")
NAV = [("audit.view", "admin_audit.index", "Audit log")]


@bp.get("/")
@requires("audit.view")
def index() -> ResponseReturnValue:
    return render_template("admin/section_pending.html", title="Audit log")
