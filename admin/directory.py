"""Admin section: Directory.

Search services (by name, municipality, category, status); create and edit services (organisation,
category, status with the alert text of a temporary closure, phones, hours, municipalities),
organisations, their locations, municipalities' names and the category names per language; after
a save, a warning names each screen the directory now pushes over budget (the save stands). Import
CSV or HSDS 3 JSON in two steps: a dry run that writes nothing and lists what would be added,
changed and refused, then applying exactly that (the upload waits in Redis under a token; the
dry run is made again on apply and applying is refused if it differs). Export both formats. Every
change is audited in the transaction that makes it.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import secrets
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from babel.dates import get_day_names
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user
from redis.exceptions import RedisError
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from admin.audit import audit
from admin.i18n import LANGUAGE_NAMES, language, said
from admin.permissions import requires
from flows.translatable import reason_of
from ruta import directory_io as io
from ruta.db import db
from ruta.directory import budget_warnings, format_hours, full_service_loading
from ruta.models import (
    Category,
    Location,
    Municipality,
    Organization,
    Service,
    ServiceAtLocation,
    ServiceStatus,
)

bp = Blueprint("admin_directory", __name__, url_prefix="/admin/directory")
NAV = [("directory.view", "admin_directory.index", _l("Directory"))]
#: How long an upload waits between its dry run and applying it.
IMPORT_TTL_SECONDS = 3600
#: Largest import upload (the app's MAX_CONTENT_LENGTH, 64 KB, is sized for webhooks).
IMPORT_MAX_BYTES = 2 * 1024 * 1024
#: Rows per page of a list (services, organisations, locations, municipalities).
PAGE_SIZE = 50
MAX_CATEGORY_NAME = 60
STATUSES = [s.value for s in ServiceStatus]
#: Budget warnings shown after a save (the rest are counted).
MAX_WARNINGS = 3
#: ISO weekdays, 1 = Monday.
WEEKDAYS = range(1, 8)
#: Opening spans offered per day in the hours editor (more when a service already has more).
HOUR_SPANS = 2
TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)(?::00)?")


@dataclass
class Page:
    """One page of a list; ``url(n)`` is this list's page ``n`` with the same search."""

    items: list[Any]
    number: int
    pages: int
    total: int

    def url(self, number: int) -> str:
        args = {**(request.view_args or {}), **request.args.to_dict(), "page": number}
        return url_for(str(request.endpoint), **args)


def _paginate(session: Session, query: Select[Any]) -> Page:
    """The page ``?page=`` asks for (the first for nonsense, the last for past the end)."""
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    pages = max(1, math.ceil(total / PAGE_SIZE))
    asked = request.args.get("page", 1, type=int) or 1
    number = min(max(asked, 1), pages)
    items = list(session.scalars(query.limit(PAGE_SIZE).offset((number - 1) * PAGE_SIZE)))
    return Page(items, number, pages, total)


def _matches(column: Any, text: str) -> Any:
    """``column`` contains ``text`` (any case), its own % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.ilike(f"%{escaped}%", escape="\\")


def _warn_over_budget() -> None:
    """After a save: flash a warning for each screen the directory now pushes over budget (a
    long name or listing), naming the screen and its longest line; the save stands. The check is
    ``ruta flows validate``'s over the published flows and the database's directory."""
    from admin.flows import _budgets

    try:
        with db.transaction() as session:
            library = current_app.extensions["ruta.flows"].engine(session).library
            found = budget_warnings(session, library, _budgets())
    except Exception:  # a check that cannot run must not hide the save
        current_app.logger.exception("directory budget check failed")
        flash(_("Warning: the screens could not be checked; run the command ruta flows validate."))
        return
    for issue in found[:MAX_WARNINGS]:
        flash(
            _(
                "Warning: a screen is now too long for people's phones: %(where)s: %(what)s",
                where=issue.path,
                what=said(issue.message),
            )
        )
    if len(found) > MAX_WARNINGS:
        flash(
            _(
                "Warning: %(n)s more screens too long (see the command ruta flows validate).",
                n=len(found) - MAX_WARNINGS,
            )
        )


@bp.url_value_preprocessor
def _import_upload_limit(endpoint: str | None, values: dict[str, Any] | None) -> None:
    # URL value preprocessors run before every before_request hook, so the CSRF check (which
    # reads the form) already parses the upload under this limit.
    if endpoint == "admin_directory.import_dry_run":
        request.max_content_length = IMPORT_MAX_BYTES


def _choices(session: Session) -> dict[str, Any]:
    return {
        "municipalities": list(
            session.scalars(select(Municipality).order_by(Municipality.country, Municipality.name))
        ),
        "categories": list(
            session.scalars(select(Category).order_by(Category.position, Category.code))
        ),
        "organizations": list(session.scalars(select(Organization).order_by(Organization.name))),
        "statuses": STATUSES,
    }


def _changes_detail(changes: dict[str, tuple[str, str]]) -> dict[str, list[str]]:
    return {name: [old, new] for name, (old, new) in changes.items()}


def _category_name(category: Category) -> str:
    """A category's name in the viewer's language, else Spanish, else any, else its code."""
    names = category.names or {}
    return names.get(language()) or names.get("es") or next(iter(names.values()), category.code)


# --- search ---------------------------------------------------------------------------------


@bp.get("/")
@requires("directory.view")
def index() -> ResponseReturnValue:
    filters = {k: request.args.get(k, "").strip() for k in ("q", "municipality", "category")}
    filters["status"] = request.args.get("status", "").strip()
    with db.transaction() as session:
        query = (
            select(Service)
            .join(Organization, Service.organization_id == Organization.id)
            .join(Category, Service.category_id == Category.id)
            .options(*full_service_loading())
            .order_by(Service.name, Organization.name, Service.id)
        )
        if filters["q"]:
            text = filters["q"]
            query = query.where(
                or_(_matches(Service.name, text), _matches(Organization.name, text))
            )
        if filters["municipality"]:
            query = query.where(
                select(ServiceAtLocation.id)
                .join(Location, ServiceAtLocation.location_id == Location.id)
                .join(Municipality, Location.municipality_id == Municipality.id)
                .where(
                    ServiceAtLocation.service_id == Service.id,
                    Municipality.code == filters["municipality"],
                )
                .exists()
            )
        if filters["category"]:
            query = query.where(Category.code == filters["category"])
        if filters["status"]:
            query = query.where(Service.status == filters["status"])
        found = _paginate(session, query)
        return render_template(
            "admin/directory_index.html",
            services=found.items,
            page=found,
            filters=filters,
            format_hours=format_hours,
            category_name=_category_name,
            **_choices(session),
        )


# --- services -------------------------------------------------------------------------------


def _hours_by_day(rows: Any) -> dict[int, list[tuple[str, str]]]:
    days: dict[int, list[tuple[str, str]]] = {day: [] for day in WEEKDAYS}
    for weekday, opens, closes in sorted(rows):
        days.setdefault(weekday, []).append((opens, closes))
    return days


def _form_of(service: Service) -> dict[str, Any]:
    values = io.service_values(service)
    form: dict[str, Any] = {name: io.display(name, value) for name, value in values.items()}
    form["phone"] = "\n".join(values["phone"])
    form["municipality"] = list(values["municipality"])
    form["organization_id"] = str(service.organization_id)
    form["hours_days"] = _hours_by_day(values["hours"])
    return form


def _clock(value: str) -> str | None:
    match = TIME.fullmatch(value.strip())
    return f"{int(match.group(1)):02d}:{match.group(2)}" if match else None


def _posted_hours() -> tuple[dict[int, list[tuple[str, str]]], str, dict[int, str]]:
    """The hours editor's rows (``hours-<day>-<n>-opens`` / ``-closes``, times as HH:MM): the
    rows as typed, the hours text ``directory_io`` reads, and a message per day that is wrong.
    A span with both times empty is no span; a day with none is closed."""
    typed: dict[int, list[tuple[str, str]]] = {}
    rows: list[tuple[int, str, str]] = []
    wrong: dict[int, str] = {}
    for day in WEEKDAYS:
        typed[day] = []
        spans: list[tuple[str, str]] = []
        for n in range(24):  # a day has at most a few spans; 24 bounds a hostile form
            opens = request.form.get(f"hours-{day}-{n}-opens")
            closes = request.form.get(f"hours-{day}-{n}-closes")
            if opens is None and closes is None:
                break
            opens, closes = (opens or "").strip(), (closes or "").strip()
            typed[day].append((opens, closes))
            if not opens and not closes:
                continue
            start, end = _clock(opens), _clock(closes)
            if not opens or not closes:
                wrong[day] = _("give both the opening and the closing time")
            elif start is None or end is None:
                wrong[day] = _("times are hours and minutes, from 00:00 to 23:59")
            elif start >= end:
                wrong[day] = _("it opens at %(opens)s: it must close later", opens=start)
            else:
                spans.append((start, end))
        spans.sort()
        for (_o1, end), (start, _c2) in pairwise(spans):
            if start < end:
                wrong.setdefault(day, _("two opening times of this day overlap"))
        rows.extend((day, start, end) for start, end in spans)
    return typed, io.hours_spec(rows), wrong


def _submitted() -> dict[str, Any]:
    form: dict[str, Any] = {
        name: request.form.get(name, "")
        for name in (
            "organization_id",
            "service",
            "category",
            "status",
            "phone",
            "alert_text",
            "languages",
            "description",
        )
    }
    form["municipality"] = request.form.getlist("municipality")
    form["hours_days"], form["hours"], form["hours_wrong"] = _posted_hours()
    return form


def _check_form(
    session: Session, form: dict[str, Any], lookup: io.Lookup, service: Service | None
) -> tuple[dict[str, Any], dict[str, str]]:
    organization_id = form["organization_id"]
    organization = (
        session.get(Organization, int(organization_id)) if organization_id.isdigit() else None
    )
    raw = {
        k: v for k, v in form.items() if k not in ("organization_id", "hours_days", "hours_wrong")
    }
    raw["organization"] = organization.name if organization is not None else ""
    values, found = io.check_service(raw, lookup)
    errors = {field: said(reason) for field, reason in found.items()}
    if form.get("hours_wrong"):
        errors["hours"] = ngettext(
            "the hours of %(num)s day are wrong",
            "the hours of %(num)s days are wrong",
            len(form["hours_wrong"]),
        )
    if organization is None:
        errors["organization"] = _("choose an organisation")
    if (
        values.get("status") == ServiceStatus.TEMPORARILY_CLOSED.value
        and not values.get("alert_text")
        and "alert_text" not in errors
    ):
        errors["alert_text"] = _("write the alert text people see while it is temporarily closed")
    other = lookup.services.get((values.get("organization", ""), values.get("service", "")))
    if other is not None and other is not service:
        errors["service"] = _("this organisation already has a service with this name")
    return values, errors


def _weekday_names() -> list[tuple[int, str]]:
    names = get_day_names("wide", locale=language())
    return [(day, names[day - 1].capitalize()) for day in WEEKDAYS]


def _render_service(
    session: Session,
    service: Service | None,
    form: dict[str, Any],
    errors: dict[str, str],
    status: int = 200,
) -> ResponseReturnValue:
    days = form.get("hours_days") or _hours_by_day(())
    spans = max([HOUR_SPANS, *(len(v) for v in days.values())])
    return (
        render_template(
            "admin/directory_service.html",
            service=service,
            form=form,
            errors=errors,
            format_hours=format_hours,
            max_alert=io.MAX_ALERT,
            weekdays=_weekday_names(),
            hours_days=days,
            hours_wrong=form.get("hours_wrong") or {},
            spans=spans,
            category_name=_category_name,
            **_choices(session),
        ),
        status,
    )


@bp.get("/services/<int:service_id>")
@requires("directory.view")
def service(service_id: int) -> ResponseReturnValue:
    with db.transaction() as session:
        found = session.get(Service, service_id)
        if found is None:
            abort(404)
        return _render_service(session, found, _form_of(found), {})


@bp.post("/services/<int:service_id>")
@requires("directory.edit")
def service_save(service_id: int) -> ResponseReturnValue:
    form = _submitted()
    with db.transaction() as session:
        found = session.get(Service, service_id)
        if found is None:
            abort(404)
        lookup = io.Lookup(session)
        values, errors = _check_form(session, form, lookup, found)
        if errors:
            return _render_service(session, found, form, errors, 400)
        changes = io.changes_between(io.service_values(found), values)
        if changes:
            changed = {k: v for k, v in values.items() if k in changes}
            io.write_service(session, found, changed, lookup)
            audit(
                session,
                "directory.service.update",
                "service",
                found.id,
                changes=_changes_detail(changes),
            )
    flash(_("Saved.") if changes else _("No changes."))
    if changes:
        _warn_over_budget()
    return redirect(url_for(".service", service_id=service_id))


@bp.get("/services/new")
@requires("directory.edit")
def service_new() -> ResponseReturnValue:
    form: dict[str, Any] = {
        "organization_id": request.args.get("organization_id", ""),
        "status": ServiceStatus.ACTIVE.value,
        "municipality": [],
        "languages": "es",
    }
    with db.transaction() as session:
        return _render_service(session, None, form, {})


@bp.post("/services/new")
@requires("directory.edit")
def service_create() -> ResponseReturnValue:
    form = _submitted()
    with db.transaction() as session:
        lookup = io.Lookup(session)
        values, errors = _check_form(session, form, lookup, None)
        if errors:
            return _render_service(session, None, form, errors, 400)
        created = io.write_service(session, None, values, lookup)
        audit(
            session,
            "directory.service.create",
            "service",
            created.id,
            values=_changes_detail(io.changes_between({}, values)),
        )
        service_id = created.id
    flash(_("Service added."))
    _warn_over_budget()
    return redirect(url_for(".service", service_id=service_id))


# --- organisations and locations ------------------------------------------------------------


def _organization_form() -> dict[str, str]:
    return {k: request.form.get(k, "") for k in io.ORGANIZATION_FIELDS}


def _check_organization(
    session: Session, form: dict[str, str], organization: Organization | None
) -> tuple[dict[str, Any], dict[str, str]]:
    values, found = io.check_organization(form)
    errors = {field: said(reason) for field, reason in found.items()}
    same_name = session.scalar(select(Organization).where(Organization.name == values.get("name")))
    if same_name is not None and same_name is not organization:
        errors["name"] = _("another organisation has this name")
    return values, errors


def _render_organizations(
    session: Session, form: dict[str, str], errors: dict[str, str], status: int = 200
) -> ResponseReturnValue:
    counts = dict(
        session.execute(
            select(Service.organization_id, func.count()).group_by(Service.organization_id)
        ).all()
    )
    q = request.args.get("q", "").strip()
    query = select(Organization).order_by(Organization.name, Organization.id)
    if q:
        query = query.where(
            or_(
                _matches(Organization.name, q),
                _matches(Organization.email, q),
                _matches(Organization.url, q),
            )
        )
    found = _paginate(session, query)
    return (
        render_template(
            "admin/directory_organizations.html",
            organizations=found.items,
            page=found,
            q=q,
            counts=counts,
            form=form,
            errors=errors,
        ),
        status,
    )


@bp.get("/organizations")
@requires("directory.view")
def organizations() -> ResponseReturnValue:
    with db.transaction() as session:
        return _render_organizations(session, {}, {})


@bp.post("/organizations")
@requires("directory.edit")
def organization_create() -> ResponseReturnValue:
    form = _organization_form()
    with db.transaction() as session:
        values, errors = _check_organization(session, form, None)
        if errors:
            return _render_organizations(session, form, errors, 400)
        created = Organization(**values)
        session.add(created)
        session.flush()
        audit(
            session,
            "directory.organization.create",
            "organization",
            created.id,
            values=_changes_detail(io.changes_between({}, values)),
        )
        organization_id = created.id
    flash(_("Organisation added."))
    _warn_over_budget()
    return redirect(url_for(".organization", organization_id=organization_id))


def _render_organization(
    session: Session,
    organization: Organization,
    form: dict[str, str],
    errors: dict[str, str],
    location_form: dict[str, str] | None = None,
    location_errors: dict[str, str] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    services = list(
        session.scalars(
            select(Service).where(Service.organization_id == organization.id).order_by(Service.name)
        )
    )
    locations = list(
        session.scalars(
            select(Location)
            .where(Location.organization_id == organization.id)
            .order_by(Location.name)
        )
    )
    return (
        render_template(
            "admin/directory_organization.html",
            organization=organization,
            services=services,
            locations=locations,
            form=form,
            errors=errors,
            location_form=location_form or {},
            location_errors=location_errors or {},
            **_choices(session),
        ),
        status,
    )


def _get_organization(session: Session, organization_id: int) -> Organization:
    found = session.get(Organization, organization_id)
    if found is None:
        abort(404)
    return found


@bp.get("/organizations/<int:organization_id>")
@requires("directory.view")
def organization(organization_id: int) -> ResponseReturnValue:
    with db.transaction() as session:
        found = _get_organization(session, organization_id)
        form = {k: v or "" for k, v in io.organization_values(found).items()}
        return _render_organization(session, found, form, {})


@bp.post("/organizations/<int:organization_id>")
@requires("directory.edit")
def organization_save(organization_id: int) -> ResponseReturnValue:
    form = _organization_form()
    with db.transaction() as session:
        found = _get_organization(session, organization_id)
        values, errors = _check_organization(session, form, found)
        if errors:
            return _render_organization(session, found, form, errors, status=400)
        changes = io.changes_between(io.organization_values(found), values)
        if changes:
            for name, value in values.items():
                setattr(found, name, value)
            audit(
                session,
                "directory.organization.update",
                "organization",
                found.id,
                changes=_changes_detail(changes),
            )
    flash(_("Saved.") if changes else _("No changes."))
    if changes:
        _warn_over_budget()
    return redirect(url_for(".organization", organization_id=organization_id))


def _location_form() -> dict[str, str]:
    return {k: request.form.get(k, "").strip() for k in ("name", "address", "municipality")}


def _check_location(
    session: Session, form: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    errors: dict[str, str] = {}
    place = session.scalar(select(Municipality).where(Municipality.code == form["municipality"]))
    if place is None:
        errors["municipality"] = _("choose a municipality")
    if not form["name"]:
        errors["name"] = _("write a name")
    elif len(form["name"]) > io.MAX_NAME:
        errors["name"] = _("the name is longer than %(n)s characters", n=io.MAX_NAME)
    if len(form["address"]) > 300:
        errors["address"] = _("the address is longer than %(n)s characters", n=300)
    values = {
        "name": form["name"],
        "address": form["address"] or None,
        "municipality_id": place.id if place is not None else None,
    }
    return values, errors


@bp.post("/organizations/<int:organization_id>/locations")
@requires("directory.edit")
def location_create(organization_id: int) -> ResponseReturnValue:
    form = _location_form()
    with db.transaction() as session:
        found = _get_organization(session, organization_id)
        values, errors = _check_location(session, form)
        if errors:
            organization_form = {k: v or "" for k, v in io.organization_values(found).items()}
            return _render_organization(
                session, found, organization_form, {}, form, errors, status=400
            )
        created = Location(organization_id=found.id, **values)
        session.add(created)
        session.flush()
        audit(
            session,
            "directory.location.create",
            "location",
            created.id,
            values={**form, "organization": found.name},
        )
        location_id = created.id
    flash(_("Location added."))
    _warn_over_budget()
    return redirect(url_for(".location", location_id=location_id))


def _render_location(
    session: Session,
    location: Location,
    form: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> ResponseReturnValue:
    services = list(
        session.scalars(
            select(Service)
            .join(ServiceAtLocation, ServiceAtLocation.service_id == Service.id)
            .where(ServiceAtLocation.location_id == location.id)
            .order_by(Service.name)
        )
    )
    return (
        render_template(
            "admin/directory_location.html",
            location=location,
            services=services,
            form=form,
            errors=errors,
            **_choices(session),
        ),
        status,
    )


@bp.get("/locations/<int:location_id>")
@requires("directory.view")
def location(location_id: int) -> ResponseReturnValue:
    with db.transaction() as session:
        found = session.get(Location, location_id)
        if found is None:
            abort(404)
        form = {
            "name": found.name,
            "address": found.address or "",
            "municipality": found.municipality.code,
        }
        return _render_location(session, found, form, {})


@bp.post("/locations/<int:location_id>")
@requires("directory.edit")
def location_save(location_id: int) -> ResponseReturnValue:
    form = _location_form()
    with db.transaction() as session:
        found = session.get(Location, location_id)
        if found is None:
            abort(404)
        values, errors = _check_location(session, form)
        if errors:
            return _render_location(session, found, form, errors, 400)
        before = {
            "name": found.name,
            "address": found.address or "",
            "municipality": found.municipality.code,
        }
        changes = {k: [before[k], form[k]] for k in before if before[k] != form[k]}
        if changes:
            for name, value in values.items():
                setattr(found, name, value)
            audit(session, "directory.location.update", "location", found.id, changes=changes)
    flash(_("Saved.") if changes else _("No changes."))
    if changes:
        _warn_over_budget()
    return redirect(url_for(".location", location_id=location_id))


# --- municipalities -------------------------------------------------------------------------

MAX_MUNICIPALITY_NAME = 120


@bp.get("/municipalities")
@requires("directory.view")
def municipalities() -> ResponseReturnValue:
    q = request.args.get("q", "").strip()
    with db.transaction() as session:
        query = select(Municipality).order_by(
            Municipality.country, Municipality.name, Municipality.id
        )
        if q:
            query = query.where(
                or_(
                    _matches(Municipality.name, q),
                    _matches(Municipality.code, q),
                    _matches(Municipality.country, q),
                )
            )
        found = _paginate(session, query)
        return render_template(
            "admin/directory_municipalities.html", municipalities=found.items, page=found, q=q
        )


@bp.get("/locations")
@requires("directory.view")
def locations() -> ResponseReturnValue:
    """Every organisation's locations, found by their name, address, organisation or
    municipality."""
    q = request.args.get("q", "").strip()
    with db.transaction() as session:
        query = (
            select(Location)
            .join(Organization, Location.organization_id == Organization.id)
            .join(Municipality, Location.municipality_id == Municipality.id)
            .order_by(Location.name, Organization.name, Location.id)
        )
        if q:
            query = query.where(
                or_(
                    _matches(Location.name, q),
                    _matches(Location.address, q),
                    _matches(Organization.name, q),
                    _matches(Municipality.name, q),
                )
            )
        found = _paginate(session, query)
        owners = {loc.organization_id for loc in found.items}
        names = dict(
            session.execute(
                select(Organization.id, Organization.name).where(Organization.id.in_(owners))
            ).all()
        )
        return render_template(
            "admin/directory_locations.html",
            locations=found.items,
            organization_names=names,
            page=found,
            q=q,
        )


def _render_municipality(
    found: Municipality, form: dict[str, str], errors: dict[str, str], status: int = 200
) -> ResponseReturnValue:
    page = render_template(
        "admin/directory_municipality.html", municipality=found, form=form, errors=errors
    )
    return page, status


@bp.get("/municipalities/<int:municipality_id>")
@requires("directory.view")
def municipality(municipality_id: int) -> ResponseReturnValue:
    with db.transaction() as session:
        found = session.get(Municipality, municipality_id)
        if found is None:
            abort(404)
        return _render_municipality(found, {"name": found.name}, {})


@bp.post("/municipalities/<int:municipality_id>")
@requires("directory.edit")
def municipality_save(municipality_id: int) -> ResponseReturnValue:
    """Rename a municipality (its code, which imports and routing use, stays)."""
    form = {"name": " ".join(request.form.get("name", "").split())}
    with db.transaction() as session:
        found = session.get(Municipality, municipality_id)
        if found is None:
            abort(404)
        if not form["name"] or len(form["name"]) > MAX_MUNICIPALITY_NAME:
            errors = {"name": f"a name of 1 to {MAX_MUNICIPALITY_NAME} characters"}
            return _render_municipality(found, form, errors, 400)
        changes = {"name": [found.name, form["name"]]} if found.name != form["name"] else {}
        if changes:
            found.name = form["name"]
            audit(
                session,
                "directory.municipality.update",
                "municipality",
                found.id,
                changes=changes,
            )
    flash(_("Saved.") if changes else _("No changes."))
    if changes:
        _warn_over_budget()
    return redirect(url_for(".municipality", municipality_id=municipality_id))


# --- categories -----------------------------------------------------------------------------


def _languages(categories: list[Category]) -> list[str]:
    found = {code for c in categories for code in c.names}
    return ["es", "en", *sorted(found - {"es", "en"})]


def _render_categories(
    session: Session,
    form: dict[str, str] | None,
    errors: dict[str, str],
    status: int = 200,
) -> ResponseReturnValue:
    categories = list(session.scalars(select(Category).order_by(Category.position, Category.code)))
    languages = _languages(categories)
    if form is None:
        form = {
            f"name-{c.id}-{language}": c.names.get(language, "")
            for c in categories
            for language in languages
        }
    return (
        render_template(
            "admin/directory_categories.html",
            categories=categories,
            languages=languages,
            languages_named=LANGUAGE_NAMES,
            form=form,
            errors=errors,
            max_name=MAX_CATEGORY_NAME,
        ),
        status,
    )


@bp.get("/categories")
@requires("directory.view")
def categories() -> ResponseReturnValue:
    with db.transaction() as session:
        return _render_categories(session, None, {})


@bp.post("/categories")
@requires("directory.edit")
def categories_save() -> ResponseReturnValue:
    with db.transaction() as session:
        rows = list(session.scalars(select(Category).order_by(Category.position, Category.code)))
        languages = _languages(rows)
        form = {
            f"name-{c.id}-{language}": request.form.get(f"name-{c.id}-{language}", "").strip()
            for c in rows
            for language in languages
        }
        errors: dict[str, str] = {}
        updates: dict[int, dict[str, str]] = {}
        for category in rows:
            names = {
                language: form[f"name-{category.id}-{language}"]
                for language in languages
                if form[f"name-{category.id}-{language}"]
            }
            long = [n for n in names.values() if len(n) > MAX_CATEGORY_NAME]
            if not names:
                errors[category.code] = _("%(code)s: give at least one name", code=category.code)
            elif long:
                errors[category.code] = _(
                    "%(code)s: names are at most %(n)s characters (they are read in SMS menus)",
                    code=category.code,
                    n=MAX_CATEGORY_NAME,
                )
            elif names != category.names:
                updates[category.id] = names
        if errors:
            return _render_categories(session, form, errors, 400)
        for category in rows:
            if category.id in updates:
                audit(
                    session,
                    "directory.category.update",
                    "category",
                    category.id,
                    code=category.code,
                    before=category.names,
                    after=updates[category.id],
                )
                category.names = updates[category.id]
    flash(ngettext("Saved %(num)s category.", "Saved %(num)s categories.", len(updates)))
    return redirect(url_for(".categories"))


# --- import and export ----------------------------------------------------------------------


def _redis() -> Any:
    return current_app.extensions["ruta.redis"]


def _upload_key(token: str) -> str:
    return f"{current_app.config['RUTA_QUEUE_PREFIX']}:directory-import:{token}"


def _render_import(
    error: str | None = None, fmt: str = "csv", status: int = 200
) -> ResponseReturnValue:
    return (
        render_template(
            "admin/directory_import.html",
            error=error,
            format=fmt,
            columns=io.CSV_COLUMNS,
            required=io.REQUIRED_COLUMNS,
            statuses=STATUSES,
            max_alert=io.MAX_ALERT,
        ),
        status,
    )


def _render_dry_run(
    plan: io.Plan, token: str, filename: str, error: str | None = None, status: int = 200
) -> ResponseReturnValue:
    shown = [row for row in plan.rows if row.outcome != io.UNCHANGED]
    return (
        render_template(
            "admin/directory_dry_run.html",
            plan=plan,
            rows=shown,
            counts=plan.counts,
            token=token,
            filename=filename,
            error=error,
        ),
        status,
    )


@bp.get("/import")
@requires("directory.edit")
def import_form() -> ResponseReturnValue:
    return _render_import()


@bp.post("/import")
@requires("directory.edit")
def import_dry_run() -> ResponseReturnValue:
    fmt = request.form.get("format", "csv")
    if fmt not in io.FORMATS:
        return _render_import(_("choose the format: CSV or HSDS 3 JSON"), "csv", 400)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _render_import(_("choose a file to import"), fmt, 400)
    filename = upload.filename[:200]
    try:
        content = io.decode(upload.read())
    except io.ImportFileError as exc:
        return _render_import(said(reason_of(exc)), fmt, 400)
    session = db.session()
    try:
        plan = io.dry_run(session, content, fmt)
    except io.ImportFileError as exc:
        return _render_import(f"{filename}: {said(reason_of(exc))}", fmt, 400)
    finally:
        session.rollback()  # a dry run writes nothing
        session.close()
    token = secrets.token_urlsafe(24)
    stored = {"format": fmt, "content": content, "filename": filename, "user": current_user.id}
    try:
        _redis().set(_upload_key(token), json.dumps(stored), ex=IMPORT_TTL_SECONDS)
    except RedisError:
        return _render_dry_run(plan, "", filename, _("cannot keep the upload (Redis is down)"), 503)
    return _render_dry_run(plan, token, filename)


@bp.post("/import/apply")
@requires("directory.edit")
def import_apply() -> ResponseReturnValue:
    token = request.form.get("token", "")
    fingerprint = request.form.get("fingerprint", "")
    try:
        blob = _redis().get(_upload_key(token)) if token else None
    except RedisError:
        return _render_import(_("cannot read the upload (Redis is down); try again"), status=503)
    stored = json.loads(blob) if blob else None
    if stored is None or stored.get("user") != current_user.id:
        return _render_import(_("this upload has expired: upload the file again"), status=409)
    with db.transaction() as session:
        try:
            plan = io.dry_run(session, stored["content"], stored["format"])
        except io.ImportFileError as exc:  # cannot happen with what the dry run accepted
            return _render_import(said(reason_of(exc)), stored["format"], 400)
        if plan.fingerprint != fingerprint:
            session.rollback()
            return _render_dry_run(
                plan,
                token,
                stored["filename"],
                _(
                    "The directory changed since this dry run: nothing was imported. "
                    "Check the new dry run below and apply again."
                ),
                409,
            )
        counts = io.apply(session, plan)
        audit(
            session,
            "directory.import",
            "directory",
            None,
            format=stored["format"],
            filename=stored["filename"],
            fingerprint=fingerprint,
            **counts,
        )
    with contextlib.suppress(RedisError):  # else it expires; applying it again changes nothing
        _redis().delete(_upload_key(token))
    plan_counts = plan.counts
    flash(
        _(
            "Imported %(file)s: %(added)s added, %(changed)s changed, %(unchanged)s unchanged, "
            "%(refused)s refused (not imported).",
            file=stored["filename"],
            added=plan_counts[io.ADDED],
            changed=plan_counts[io.CHANGED],
            unchanged=plan_counts[io.UNCHANGED],
            refused=plan_counts[io.REFUSED],
        )
    )
    _warn_over_budget()
    return redirect(url_for(".index"))


@bp.get("/export/<format>")
@requires("directory.view")
def export(format: str) -> ResponseReturnValue:
    if format not in io.FORMATS:
        abort(404)
    with db.transaction() as session:
        content, mimetype, filename = io.export(session, format)
        audit(session, "directory.export", "directory", None, format=format)
    return Response(
        content,
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
