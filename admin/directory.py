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
import secrets
from typing import Any

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
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from redis.exceptions import RedisError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from admin.audit import audit
from admin.permissions import requires
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
MAX_RESULTS = 300
MAX_CATEGORY_NAME = 60
STATUSES = [s.value for s in ServiceStatus]
#: Budget warnings shown after a save (the rest are counted).
MAX_WARNINGS = 3


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
        flash("Warning: the screens could not be checked; run `ruta flows validate`.")
        return
    for issue in found[:MAX_WARNINGS]:
        flash(
            f"Warning: a screen is now too long for people's phones: {issue.path}: {issue.message}"
        )
    if len(found) > MAX_WARNINGS:
        flash(f"Warning: {len(found) - MAX_WARNINGS} more screens too long (ruta flows validate).")


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
    return category.names.get("es") or next(iter(category.names.values()), category.code)


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
            .order_by(Service.name, Organization.name)
        )
        if filters["q"]:
            like = f"%{filters['q']}%"
            query = query.where(or_(Service.name.ilike(like), Organization.name.ilike(like)))
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
        services = list(session.scalars(query.limit(MAX_RESULTS + 1)))
        return render_template(
            "admin/directory_index.html",
            services=services[:MAX_RESULTS],
            more=len(services) > MAX_RESULTS,
            filters=filters,
            format_hours=format_hours,
            **_choices(session),
        )


# --- services -------------------------------------------------------------------------------


def _form_of(service: Service) -> dict[str, Any]:
    values = io.service_values(service)
    form: dict[str, Any] = {name: io.display(name, value) for name, value in values.items()}
    form["phone"] = "\n".join(values["phone"])
    form["municipality"] = list(values["municipality"])
    form["organization_id"] = str(service.organization_id)
    return form


def _submitted() -> dict[str, Any]:
    form: dict[str, Any] = {
        name: request.form.get(name, "")
        for name in (
            "organization_id",
            "service",
            "category",
            "status",
            "phone",
            "hours",
            "alert_text",
            "languages",
            "description",
        )
    }
    form["municipality"] = request.form.getlist("municipality")
    return form


def _check_form(
    session: Session, form: dict[str, Any], lookup: io.Lookup, service: Service | None
) -> tuple[dict[str, Any], dict[str, str]]:
    organization_id = form["organization_id"]
    organization = (
        session.get(Organization, int(organization_id)) if organization_id.isdigit() else None
    )
    raw = {k: v for k, v in form.items() if k != "organization_id"}
    raw["organization"] = organization.name if organization is not None else ""
    values, errors = io.check_service(raw, lookup)
    if organization is None:
        errors["organization"] = "choose an organisation"
    if (
        values.get("status") == ServiceStatus.TEMPORARILY_CLOSED.value
        and not values.get("alert_text")
        and "alert_text" not in errors
    ):
        errors["alert_text"] = "write the alert text people see while it is temporarily closed"
    other = lookup.services.get((values.get("organization", ""), values.get("service", "")))
    if other is not None and other is not service:
        errors["service"] = "this organisation already has a service with this name"
    return values, errors


def _render_service(
    session: Session,
    service: Service | None,
    form: dict[str, Any],
    errors: dict[str, str],
    status: int = 200,
) -> ResponseReturnValue:
    return (
        render_template(
            "admin/directory_service.html",
            service=service,
            form=form,
            errors=errors,
            format_hours=format_hours,
            max_alert=io.MAX_ALERT,
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
    flash("Saved." if changes else "No changes.")
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
    flash("Service added.")
    _warn_over_budget()
    return redirect(url_for(".service", service_id=service_id))


# --- organisations and locations ------------------------------------------------------------


def _organization_form() -> dict[str, str]:
    return {k: request.form.get(k, "") for k in io.ORGANIZATION_FIELDS}


def _check_organization(
    session: Session, form: dict[str, str], organization: Organization | None
) -> tuple[dict[str, Any], dict[str, str]]:
    values, errors = io.check_organization(form)
    same_name = session.scalar(select(Organization).where(Organization.name == values.get("name")))
    if same_name is not None and same_name is not organization:
        errors["name"] = "another organisation has this name"
    return values, errors


def _render_organizations(
    session: Session, form: dict[str, str], errors: dict[str, str], status: int = 200
) -> ResponseReturnValue:
    counts = dict(
        session.execute(
            select(Service.organization_id, func.count()).group_by(Service.organization_id)
        ).all()
    )
    organizations = list(session.scalars(select(Organization).order_by(Organization.name)))
    return (
        render_template(
            "admin/directory_organizations.html",
            organizations=organizations,
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
    flash("Organisation added.")
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
    flash("Saved." if changes else "No changes.")
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
        errors["municipality"] = "choose a municipality"
    if not form["name"]:
        errors["name"] = "missing name"
    elif len(form["name"]) > io.MAX_NAME:
        errors["name"] = f"name is longer than {io.MAX_NAME} characters"
    if len(form["address"]) > 300:
        errors["address"] = "address is longer than 300 characters"
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
    flash("Location added.")
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
    flash("Saved." if changes else "No changes.")
    if changes:
        _warn_over_budget()
    return redirect(url_for(".location", location_id=location_id))


# --- municipalities -------------------------------------------------------------------------

MAX_MUNICIPALITY_NAME = 120


@bp.get("/municipalities")
@requires("directory.view")
def municipalities() -> ResponseReturnValue:
    with db.transaction() as session:
        rows = list(
            session.scalars(select(Municipality).order_by(Municipality.country, Municipality.name))
        )
        return render_template("admin/directory_municipalities.html", municipalities=rows)


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
    flash("Saved." if changes else "No changes.")
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
                errors[category.code] = f"{category.code}: give at least one name"
            elif long:
                errors[category.code] = (
                    f"{category.code}: names are at most {MAX_CATEGORY_NAME} characters "
                    "(they are read in SMS menus)"
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
    flash(f"Saved {len(updates)} categor{'y' if len(updates) == 1 else 'ies'}.")
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
        return _render_import("choose the format: CSV or HSDS 3 JSON", "csv", 400)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _render_import("choose a file to import", fmt, 400)
    filename = upload.filename[:200]
    try:
        content = io.decode(upload.read())
    except io.ImportFileError as exc:
        return _render_import(str(exc), fmt, 400)
    session = db.session()
    try:
        plan = io.dry_run(session, content, fmt)
    except io.ImportFileError as exc:
        return _render_import(f"{filename}: {exc}", fmt, 400)
    finally:
        session.rollback()  # a dry run writes nothing
        session.close()
    token = secrets.token_urlsafe(24)
    stored = {"format": fmt, "content": content, "filename": filename, "user": current_user.id}
    try:
        _redis().set(_upload_key(token), json.dumps(stored), ex=IMPORT_TTL_SECONDS)
    except RedisError:
        return _render_dry_run(plan, "", filename, "cannot keep the upload (Redis is down)", 503)
    return _render_dry_run(plan, token, filename)


@bp.post("/import/apply")
@requires("directory.edit")
def import_apply() -> ResponseReturnValue:
    token = request.form.get("token", "")
    fingerprint = request.form.get("fingerprint", "")
    try:
        blob = _redis().get(_upload_key(token)) if token else None
    except RedisError:
        return _render_import("cannot read the upload (Redis is down); try again", status=503)
    stored = json.loads(blob) if blob else None
    if stored is None or stored.get("user") != current_user.id:
        return _render_import("this upload has expired: upload the file again", status=409)
    with db.transaction() as session:
        try:
            plan = io.dry_run(session, stored["content"], stored["format"])
        except io.ImportFileError as exc:  # cannot happen with what the dry run accepted
            return _render_import(str(exc), stored["format"], 400)
        if plan.fingerprint != fingerprint:
            session.rollback()
            return _render_dry_run(
                plan,
                token,
                stored["filename"],
                "The directory changed since this dry run: nothing was imported. "
                "Check the new dry run below and apply again.",
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
        f"Imported {stored['filename']}: {plan_counts[io.ADDED]} added, "
        f"{plan_counts[io.CHANGED]} changed, {plan_counts[io.UNCHANGED]} unchanged, "
        f"{plan_counts[io.REFUSED]} refused (not imported)."
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
