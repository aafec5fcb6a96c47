"""The audit log: every view, export and change of a case, flow or directory entry."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_login import current_user
from sqlalchemy.orm import Session

from ruta.models import AuditEntry


def actor() -> str:
    if getattr(current_user, "is_authenticated", False):
        return f"user:{current_user.id}:{current_user.email}"
    return "anonymous"


def audit(
    session: Session, action: str, object_type: str, object_id: Any = None, **detail: Any
) -> None:
    """Write one entry in the caller's transaction (so it commits with the change it records)."""
    detail.setdefault("ip", request.remote_addr if request else None)
    session.add(
        AuditEntry(
            actor=actor(),
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            detail=detail,
        )
    )
