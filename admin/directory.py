"""Admin section: Directory."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from admin.permissions import requires

bp = Blueprint("admin_directory", __name__, url_prefix="/admin/directory")
NAV = [("directory.view", "admin_directory.index", "Directory")]


@bp.get("/")
@requires("directory.view")
def index() -> ResponseReturnValue:
    return render_template("admin/section_pending.html", title="Directory")
