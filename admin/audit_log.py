"""Admin section: the audit log, newest first, filtered by action and object (admins only).

Actions and objects are named in the user's language (``audit_actions`` and ``audit_objects`` in
ruta/taxonomy.yaml; one missing there is shown as its code), times in the user's zone."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from admin.permissions import requires
from ruta.db import db
from ruta.models import AuditEntry

bp = Blueprint("admin_audit", __name__, url_prefix="/admin/audit")
NAV = [("audit.view", "admin_audit.index", _l("Audit log"))]
PAGE_SIZE = 50


@bp.get("/")
@requires("audit.view")
def index() -> ResponseReturnValue:
    action = request.args.get("action", "").strip()
    object_type = request.args.get("object_type", "").strip()
    object_id = request.args.get("object_id", "").strip()
    page = max(1, request.args.get("page", 1, type=int) or 1)
    query = select(AuditEntry)
    if action:
        # "case" matches case.view, case.reveal...; "case.view" only itself.
        query = query.where(
            (AuditEntry.action == action) | AuditEntry.action.startswith(action + ".")
        )
    if object_type:
        query = query.where(AuditEntry.object_type == object_type)
    if object_id:
        query = query.where(AuditEntry.object_id == object_id)
    with db.transaction() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        entries = list(
            session.scalars(
                query.order_by(AuditEntry.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
            )
        )
        actions = list(
            session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action))
        )
        object_types = list(
            session.scalars(
                select(AuditEntry.object_type).distinct().order_by(AuditEntry.object_type)
            )
        )
    return render_template(
        "admin/audit_index.html",
        entries=entries,
        actions=actions,
        # "case" filters case.view, case.accept...: one choice for all of an object's actions.
        prefixes=sorted({a.split(".")[0] for a in actions if "." in a}),
        object_types=object_types,
        filters={"action": action, "object_type": object_type, "object_id": object_id},
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        total=total,
    )
