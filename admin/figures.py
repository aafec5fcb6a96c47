"""Admin section: anonymous figures per municipality (requests by kind of help and week, time
to a focal point's answer, needs with no service in the directory). Counts below 5 are never
shown (ruta/figures.py), in the charts (a hatched bar of no height of its own) or in the CSV
downloads. Weeks are in the viewer's time zone and the page says which. Coordinators see their
country; admins and viewers every country."""

from __future__ import annotations

import csv
import io
from typing import Any

from babel.numbers import format_decimal
from flask import Blueprint, Response, abort, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import Select, false, select

from admin import charts
from admin.i18n import language, zone
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


def _compute() -> tuple[figures.Figures, dict[str, Any]]:
    """The figures the viewer asked for (period, municipality) and what the page shows of the
    choice; an unknown period or municipality falls back to the default, never an error."""
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
            language=language(),
            unrouted=_countable_unrouted(current_user),
            zone=zone(),
        )
    return result, {
        "municipalities": municipalities,
        "chosen": chosen,
        "weeks": weeks,
        "country": country,
    }


def _hours(value: float) -> str:
    return _("%(hours)s h", hours=format_decimal(value, "0.0", locale=language()))


def _week_label(week: str) -> str:
    # "2026-W48" -> "48": the axis is read with the table's full weeks beside it.
    return week.rpartition("W")[2]


def _request_charts(result: figures.Figures) -> list[tuple[str, str, Markup]]:
    """One small chart per kind of help, weeks along the bottom, one scale for all."""
    minimum = figures.MIN_COUNT
    highest = max(
        (n for n in result.requests.values() if n >= minimum),
        default=minimum,
    )
    top = charts.nice_top(highest)
    drawn = []
    for index, (code, label) in enumerate(result.categories):
        items = []
        for week in result.weeks:
            count = result.requests.get((week, code), 0)
            value = count if count >= minimum else None
            items.append(
                charts.Bar(
                    _week_label(week),
                    f"{week}: {figures.shown(count)}",
                    value,
                )
            )
        drawn.append(
            (
                code,
                label,
                charts.bars(
                    f"chart-requests-{index}",
                    _("Requests for %(kind)s by week", kind=label),
                    _(
                        "Bars per ISO week, from %(first)s to %(last)s. A hatched bar is a "
                        "count below %(n)s, not drawn at its height. The numbers are in the "
                        "table below.",
                        first=result.weeks[0],
                        last=result.weeks[-1],
                        n=minimum,
                    ),
                    items,
                    minimum=minimum,
                    suppressed_label=_("fewer than %(n)s", n=minimum),
                    top=top,
                ),
            )
        )
    return drawn


def _response_chart(result: figures.Figures) -> Markup:
    items = [
        charts.Row(
            label,
            response.median_hours,
            _hours(response.median_hours)
            if response.median_hours is not None
            else _("not shown (fewer than %(n)s)", n=figures.MIN_COUNT),
        )
        for (code, label), response in zip(result.categories, result.responses, strict=True)
    ]
    return charts.rows(
        "chart-responses",
        _("Median time to a focal point's answer, by kind of help"),
        _(
            "One bar per kind of help, its length the median hours from the request to a focal "
            "point accepting it; no bar where fewer than %(n)s requests were accepted. The "
            "numbers are in the table below.",
            n=figures.MIN_COUNT,
        ),
        items,
    )


@bp.get("/")
@requires("figures.view")
def index() -> ResponseReturnValue:
    result, chosen = _compute()
    return render_template(
        "admin/figures.html",
        figures=result,
        shown=figures.shown,
        hours=_hours,
        minimum=figures.MIN_COUNT,
        week_choices=WEEK_CHOICES,
        zone_name=zone().key,
        request_charts=_request_charts(result) if result.categories else [],
        response_chart=_response_chart(result) if result.categories else None,
        **chosen,
    )


#: The downloads; each applies the page's suppression.
TABLES = ("requests", "responses")


def _cell(value: str) -> str:
    # A spreadsheet runs a cell starting with one of these as a formula (CSV injection); a
    # category name is typed in the directory editor.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@bp.get("/<table>.csv")
@requires("figures.view")
def download(table: str) -> ResponseReturnValue:
    """The table ``requests`` (by week and kind) or ``responses`` (time to an answer) as CSV,
    with counts below the minimum as "<5" and medians over too few left empty, as on the page."""
    if table not in TABLES:
        abort(404)
    result, chosen = _compute()
    out = io.StringIO()
    writer = csv.writer(out)
    if table == "requests":
        writer.writerow(
            [_("Week (ISO, %(zone)s)", zone=zone().key)]
            + [_cell(label) for _code, label in result.categories]
        )
        for week in result.weeks:
            writer.writerow(
                [week] + [result.cell(week, code) for code, _label in result.categories]
            )
    else:
        writer.writerow([_("Kind of help"), _("Accepted requests"), _("Median hours")])
        for (_code, label), response in zip(result.categories, result.responses, strict=True):
            median = response.median_hours
            writer.writerow(
                [
                    _cell(label),
                    figures.shown(response.accepted),
                    "" if median is None else f"{median:.1f}",
                ]
            )
    place = chosen["chosen"].code if chosen["chosen"] else (chosen["country"] or "all")
    filename = f"ruta-{table}-{place}-{chosen['weeks']}w.csv".lower()
    return Response(
        "\ufeff" + out.getvalue(),  # the BOM: spreadsheets then read the accents as UTF-8
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
