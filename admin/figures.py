"""Admin section: anonymous figures per municipality (requests by kind of help and week, time
to a focal point's answer, needs with no service in the directory). Counts below 5 are never
shown (ruta/figures.py). Coordinators see their country; admins and viewers every country."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import Select, false, select

from admin.permissions import requires
from ruta import clock, figures
from ruta.db import db
from ruta.models import Case, Municipality, Role, UnroutedRequest

bp = Blueprint("admin_figures", __name__, url_prefix="/admin/figures")
NAV = [("figures.view", "admin_figures.index", _l("Figures"))]
#: Weeks offered; the default is the first.
WEEK_CHOICES = (12, 4, 26, 52)


def _country(user: Any) -> str | None:
    """The one country ``user`` may count, or None for every country."""
    return user.country if Role(user.role) is Role.COORDINATOR else None


def _countable(user: Any) -> Select[Any]:
    query = select(Case)
    if Role(user.role) is Role.COORDINATOR:
        query = query.where(Case.country == user.country if user.country else false())
    return query


def _countable_unrouted(user: Any) -> Select[Any]:
    query = select(UnroutedRequest)
    if Role(user.role) is Role.COORDINATOR:
        query = query.where(UnroutedRequest.country == user.country if user.country else false())
    return query


@bp.get("/")
@requires("figures.view")
def index() -> ResponseReturnValue:
    weeks = request.args.get("weeks", WEEK_CHOICES[0], type=int)
    if weeks not in WEEK_CHOICES:
        weeks = WEEK_CHOICES[0]
    code = request.args.get("municipality", "").strip()
    country = _country(current_user)
    with db.transaction() as session:
        places = select(Municipality).order_by(Municipality.country, Municipality.name)
        if Role(current_user.role) is Role.COORDINATOR:
            places = places.where(Municipality.country == (country or ""))
        municipalities = list(session.scalars(places))
        chosen = next((m for m in municipalities if m.code == code), None)
        result = figures.compute(
            session,
            _countable(current_user),
            now=clock.now(),
            weeks=weeks,
            municipality_id=chosen.id if chosen else None,
            unrouted=_countable_unrouted(current_user),
        )
    return render_template(
        "admin/figures.html",
        figures=result,
        shown=figures.shown,
        minimum=figures.MIN_COUNT,
        municipalities=municipalities,
        chosen=chosen,
        weeks=weeks,
        week_choices=WEEK_CHOICES,
        country=country,
    )
