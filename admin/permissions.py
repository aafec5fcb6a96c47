"""Who may do what in the admin: every permission check in Ruta goes through this module.

Each admin view declares one permission with ``@requires``; the registry of endpoints it builds
lets a test walk the whole URL map and check each role gets exactly its own pages.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort
from flask_login import current_user

from ruta.models import Role

F = TypeVar("F", bound=Callable[..., Any])

ALL = frozenset(Role)
#: permission -> roles that hold it.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "dashboard": ALL,
    "flows.view": frozenset({Role.ADMIN, Role.FLOW_EDITOR, Role.VIEWER}),
    "flows.edit": frozenset({Role.ADMIN, Role.FLOW_EDITOR}),
    "flows.publish": frozenset({Role.ADMIN, Role.FLOW_EDITOR}),
    "directory.view": frozenset({Role.ADMIN, Role.DIRECTORY_EDITOR, Role.VIEWER}),
    "directory.edit": frozenset({Role.ADMIN, Role.DIRECTORY_EDITOR}),
    "routing.view": frozenset({Role.ADMIN, Role.COORDINATOR, Role.VIEWER}),
    "routing.edit": frozenset({Role.ADMIN, Role.COORDINATOR}),
    "cases.view": frozenset({Role.ADMIN, Role.COORDINATOR, Role.FOCAL_POINT}),
    "cases.act": frozenset({Role.ADMIN, Role.COORDINATOR, Role.FOCAL_POINT}),
    "cases.reveal": frozenset({Role.ADMIN, Role.COORDINATOR, Role.FOCAL_POINT}),
    "broadcasts.view": frozenset({Role.ADMIN, Role.COORDINATOR, Role.VIEWER}),
    "broadcasts.send": frozenset({Role.ADMIN, Role.COORDINATOR}),
    # People's questions (their own words): coordinators for their country.
    "questions.view": frozenset({Role.ADMIN, Role.COORDINATOR}),
    "questions.answer": frozenset({Role.ADMIN, Role.COORDINATOR}),
    # Anonymous counts (small ones hidden); coordinators see their own country's.
    "figures.view": frozenset({Role.ADMIN, Role.COORDINATOR, Role.VIEWER}),
    "audit.view": frozenset({Role.ADMIN}),
    "users.manage": frozenset({Role.ADMIN}),
}
#: endpoint -> the permission it requires (filled by ``requires``).
ENDPOINTS: dict[str, str] = {}


def can(user: Any, permission: str) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    return Role(user.role) in PERMISSIONS[permission]


def requires(permission: str) -> Callable[[F], F]:
    """Refuse the view (login first, then 403) unless the user's role holds ``permission``."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                from flask import redirect, request, url_for

                return redirect(url_for("admin_auth.login", next=request.path))
            if not can(current_user, permission):
                abort(403)
            return view(*args, **kwargs)

        guarded.required_permission = permission  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorate
