"""Import and export of the service directory: CSV and Open Referral HSDS 3 JSON.

Plain functions over a SQLAlchemy ``Session``, used by the admin and the tests (a CLI may follow):

- ``dry_run(session, content, fmt)`` reads a file and returns a ``Plan``: each row *added*,
  *changed* (with the fields that change, old and new), *unchanged* or *refused* (with the
  reasons). It only reads the database.
- ``apply(session, plan)`` writes the added and changed rows of a plan made in the same
  transaction. Services absent from the file are left as they are: an import never deletes.
- ``export_csv(session)`` and ``export_hsds(session)`` write the whole directory in the same
  shapes, so an export imported again changes nothing.

A service is identified by (organisation name, service name): a row with a pair already in the
directory *changes* that service, any other row *adds* one.

**CSV** (UTF-8, a header row; comma, semicolon or tab separated), one service a row:

=============  ========================================================================
organization   organisation name (required; a new name adds the organisation)
service        service name (required)
category       category code, e.g. ``health`` (required)
municipality   municipality code, e.g. ``cr-upala`` (required; several as ``a; b``)
status         ``active`` (also when empty), ``inactive`` or ``temporarily closed``
phone          phone numbers, several as ``+506 0000 0101; +506 0000 0102``
hours          ISO weekdays (1 = Monday) and times: ``1-5 08:00-16:00; 6 09:00-12:00``
alert_text     shown while the service is temporarily closed (at most 320 characters)
languages      language codes, e.g. ``es;en``
description    free text
=============  ========================================================================

Only ``organization``, ``service``, ``category`` and ``municipality`` columns are required; a
column left out of the file is left as it is on existing services (and empty on new ones), while
an empty cell in a present column empties the field. A service is placed at its organisation's
location in each municipality (one is added, named "organisation, municipality", if missing).
Cells starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return are exported with a
leading ``'`` (so spreadsheets do not run them as formulas) and read back without it.

**HSDS 3 JSON**: an object with the arrays ``organizations``, ``services``, ``locations``,
``service_at_locations``, ``phones``, ``schedules`` (and optionally ``taxonomy_terms``,
``attributes``, ``languages``), with HSDS 3 field names. Phones, schedules, languages,
attributes and service_at_locations may also be nested in their service. The file describes each
of its services whole: a service's phones, schedules and languages not in the file are removed.

- organization: ``id``, ``name``, ``description``, ``website``, ``email``.
- service: ``id``, ``organization_id``, ``name``, ``description``, ``status`` (``defunct`` is read
  as ``inactive``), ``alert`` (the alert text), ``languages`` (``[{"code": "es"}]``).
- category: the extension field ``x_category`` (a category code); without it, the service's
  taxonomy terms (``attributes[].taxonomy_term_id`` into ``taxonomy_terms``, or a nested
  ``attributes[].taxonomy_term``), whose ``code`` or ``name`` matches a category's code, one of
  its names, or one of its aliases in ``ruta/taxonomy.yaml`` (old codes such as ``legal`` and
  other directories' terms such as ``Housing`` or ``Legal aid``). The CSV ``category`` column is
  read the same way.
- An export writes the categories as HSDS 3 ``taxonomy_terms`` (code, English name, every name as
  the description) of one ``taxonomies`` entry, "Ruta kinds of help", linked to each service
  by an ``attributes`` row, beside ``x_category``.
- municipality: through ``service_at_locations`` to ``locations``; a location's extension field
  ``x_municipality_code``, else ``addresses[0].city`` (or ``locality``) matched against the
  municipality names (accents and case ignored; ``addresses[0].country`` settles a tie).
- phone: ``service_id``, ``number``. schedule: ``service_id`` (or ``service_at_location_id``),
  ``freq`` ``WEEKLY``, ``byday`` (``MO,TU``), ``opens_at``, ``closes_at`` (``HH:MM[:SS]``).

Rows that cannot be mapped are refused with the reason; the others are imported.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from flows.translatable import Text, reason_of
from ruta import taxonomy
from ruta.demo_data import parse_hours
from ruta.directory import full_service_loading
from ruta.models import (
    Category,
    Location,
    Municipality,
    Organization,
    Phone,
    Schedule,
    Service,
    ServiceAtLocation,
    ServiceStatus,
)

FORMATS = ("csv", "hsds")
CSV_COLUMNS = (
    "organization",
    "service",
    "category",
    "municipality",
    "status",
    "phone",
    "hours",
    "alert_text",
    "languages",
    "description",
)
REQUIRED_COLUMNS = ("organization", "service", "category", "municipality")
ORGANIZATION_FIELDS = ("name", "description", "url", "email")
STATUSES = tuple(s.value for s in ServiceStatus)
MAX_NAME, MAX_ALERT, MAX_PHONE, MAX_URL, MAX_EMAIL = 200, 320, 40, 300, 200
ADDED, CHANGED, UNCHANGED, REFUSED = "added", "changed", "unchanged", "refused"
WEEKDAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
#: Namespace of the stable HSDS ids of an export (uuid5 of "kind:id").
HSDS_NAMESPACE = uuid.UUID("6f1c2b0e-5a52-4d8e-9a3c-2f1d7c9b4e01")

Hours = tuple[tuple[int, str, str], ...]


class ImportFileError(ValueError):
    """The file as a whole cannot be read (not UTF-8, not JSON, missing columns...)."""


class HoursError(ValueError):
    """An hours text that cannot be read; the message says why, for the person who typed it."""


# --- hours, phones, languages ----------------------------------------------------------------


def _clock(value: str) -> str | None:
    """``8:00`` / ``08:00`` / ``08:00:00`` -> ``08:00``; None when not a time of day."""
    match = re.fullmatch(r"(\d{1,2}):([0-5]\d)(?::00)?", value.strip())
    if not match or int(match.group(1)) > 23:
        return None
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def _check_rows(rows: Iterable[tuple[int, str, str]], where: str) -> list[tuple[int, str, str]]:
    checked = []
    for weekday, opens, closes in rows:
        if not 1 <= weekday <= 7:
            raise HoursError(Text("%(where)s: days are 1 (Monday) to 7 (Sunday)", where=where))
        opens_at, closes_at = _clock(opens), _clock(closes)
        if opens_at is None or closes_at is None:
            raise HoursError(Text("%(where)s: times are HH:MM from 00:00 to 23:59", where=where))
        if opens_at >= closes_at:
            raise HoursError(
                Text(
                    "%(where)s: opens at %(opens)s, not before it closes at %(closes)s",
                    where=where,
                    opens=opens_at,
                    closes=closes_at,
                )
            )
        checked.append((weekday, opens_at, closes_at))
    return checked


def check_hours(spec: str) -> Hours:
    """Read ``"1-5 08:00-16:00; 6 09:00-12:00"`` (via ``demo_data.parse_hours``), or raise
    ``HoursError`` saying what is wrong. An empty text means no hours."""
    rows: list[tuple[int, str, str]] = []
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        where = Text('hours "%(hours)s"', hours=part)
        try:
            parsed = parse_hours(part)
        except ValueError:
            raise HoursError(
                Text(
                    '%(where)s: write days then times, e.g. "1-5 08:00-16:00; 6 09:00-12:00"',
                    where=where,
                )
            ) from None
        if not parsed:
            raise HoursError(
                Text(
                    "%(where)s: a range of days runs from the first to the last, e.g. 1-5",
                    where=where,
                )
            )
        rows.extend(_check_rows(parsed, where))
    return tuple(sorted(set(rows)))


def _day_list(days: list[int]) -> str:
    runs: list[list[int]] = []
    for day in sorted(set(days)):
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(
        f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)) for run in runs
    )


def hours_spec(rows: Iterable[tuple[int, str, str]]) -> str:
    """The hours text ``check_hours`` reads back to the same rows (``1-5 08:00-16:00; 6 ...``)."""
    by_span: dict[tuple[str, str], list[int]] = {}
    for weekday, opens, closes in sorted(rows):
        by_span.setdefault((opens, closes), []).append(weekday)
    ordered = sorted(by_span.items(), key=lambda item: (item[1][0], item[0]))
    return "; ".join(f"{_day_list(days)} {opens}-{closes}" for (opens, closes), days in ordered)


def _split(value: Any, separators: str = ";") -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        parts: list[str] = re.split(f"[{re.escape(separators)}]", value)
    else:
        parts = [str(v) for v in value]
    return [p.strip() for p in parts if p.strip()]


def _check_phones(value: Any) -> tuple[str, ...]:
    phones = []
    for number in _split(value, ";\n"):
        digits = sum(ch.isdigit() for ch in number)
        if not re.fullmatch(r"\+?[0-9][0-9 ()./-]*", number) or digits < 3:
            raise ValueError(
                Text("phone %(phone)s: use digits, spaces and + - ( ) . / only", phone=repr(number))
            )
        if len(number) > MAX_PHONE:
            raise ValueError(
                Text(
                    "phone %(phone)s is longer than %(n)s characters",
                    phone=repr(number),
                    n=MAX_PHONE,
                )
            )
        phones.append(number)
    return tuple(dict.fromkeys(phones))


def _check_languages(value: Any) -> tuple[str, ...]:
    codes = []
    for code in _split(value, ";,"):
        if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?", code):
            raise ValueError(
                Text("language %(code)s: use codes such as es or en, e.g. es;en", code=repr(code))
            )
        codes.append(code.lower())
    return tuple(dict.fromkeys(codes))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold().strip()


# --- the directory as compared values -------------------------------------------------------


def service_values(service: Service) -> dict[str, Any]:
    """A service as the import compares it: the CSV columns, normalised."""
    return {
        "organization": service.organization.name,
        "service": service.name,
        "category": service.category.code,
        "municipality": tuple(
            sorted({link.location.municipality.code for link in service.locations})
        ),
        "status": service.status,
        "phone": tuple(phone.number for phone in service.phones),
        "hours": tuple(sorted((s.weekday, s.opens_at, s.closes_at) for s in service.schedules)),
        "alert_text": service.alert_text or None,
        "languages": tuple(service.languages or ()),
        "description": service.description or None,
    }


def organization_values(organization: Organization) -> dict[str, Any]:
    return {
        "name": organization.name,
        "description": organization.description or None,
        "url": organization.url or None,
        "email": organization.email or None,
    }


def display(name: str, value: Any) -> str:
    """A compared value as text: as the CSV holds it and the dry run shows it."""
    if value is None:
        return ""
    if name == "hours":
        return hours_spec(value)
    if name == "languages":
        return ";".join(value)
    if isinstance(value, tuple):
        return "; ".join(value)
    return str(value)


class Lookup:
    """What an import resolves names against, read once: places, categories, organisations and
    services with everything ``service_values`` reads."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.municipalities = {m.code: m for m in session.scalars(select(Municipality))}
        self.categories = {c.code: c for c in session.scalars(select(Category))}
        self.organizations = {o.name: o for o in session.scalars(select(Organization))}
        services = session.scalars(select(Service).options(*full_service_loading()))
        self.services = {(s.organization.name, s.name): s for s in services}

    def category_for(self, candidates: Iterable[str]) -> Category | None:
        """The category a code, a name or another directory's term (an alias in the
        taxonomy file, such as "legal aid" or "housing") stands for."""
        for candidate in candidates:
            if candidate.strip().lower() in self.categories:
                return self.categories[candidate.strip().lower()]
            for category in self.categories.values():
                if _fold(candidate) in {_fold(n) for n in category.names.values()}:
                    return category
            code = taxonomy.load().canonical(_fold(candidate))
            if code in self.categories:
                return self.categories[code]
        return None

    def municipality_named(self, name: str, country: str | None) -> Municipality | None:
        found = [m for m in self.municipalities.values() if _fold(m.name) == _fold(name)]
        if len(found) > 1 and country:
            found = [m for m in found if m.country.upper() == country.strip().upper()]
        return found[0] if len(found) == 1 else None


def check_service(raw: dict[str, Any], lookup: Lookup) -> tuple[dict[str, Any], dict[str, str]]:
    """Normalise the fields present in ``raw`` (CSV column names; text, or lists where a field
    holds several values) and check them: (values, errors by field)."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    names = (
        (
            "organization",
            Text("missing organisation"),
            Text("organisation is longer than %(n)s characters", n=MAX_NAME),
        ),
        (
            "service",
            Text("missing service name"),
            Text("service name is longer than %(n)s characters", n=MAX_NAME),
        ),
    )
    for name, missing, too_long in names:
        text = _text(raw.get(name))
        if text is None:
            errors[name] = missing
        elif len(text) > MAX_NAME:
            errors[name] = too_long
        else:
            values[name] = text
    code = (_text(raw.get("category")) or "").lower()
    if code and code not in lookup.categories:
        found = lookup.category_for([code])  # an old code or another directory's term
        code = found.code if found is not None else code
    if not code:
        errors["category"] = Text("missing category")
    elif code not in lookup.categories:
        known = ", ".join(sorted(lookup.categories))
        errors["category"] = Text(
            "unknown category %(code)s (known: %(known)s)", code=repr(code), known=known
        )
    else:
        values["category"] = code
    codes = [c.lower() for c in _split(raw.get("municipality"), ";,")]
    unknown = [c for c in codes if c not in lookup.municipalities]
    if not codes:
        errors["municipality"] = Text("missing municipality")
    elif unknown:
        errors["municipality"] = Text("unknown municipality code %(code)s", code=repr(unknown[0]))
    else:
        values["municipality"] = tuple(sorted(set(codes)))
    if "status" in raw:
        status = (_text(raw["status"]) or ServiceStatus.ACTIVE.value).lower().replace("_", " ")
        if status not in STATUSES:
            errors["status"] = Text(
                "bad status %(status)s: use active, inactive or temporarily closed",
                status=repr(raw["status"]),
            )
        else:
            values["status"] = status
    if "phone" in raw:
        try:
            values["phone"] = _check_phones(raw["phone"])
        except ValueError as exc:
            errors["phone"] = reason_of(exc)
    if "hours" in raw:
        hours = raw["hours"]
        try:
            if isinstance(hours, str) or hours is None:
                values["hours"] = check_hours(hours or "")
            else:
                values["hours"] = tuple(sorted(set(_check_rows(hours, "hours"))))
        except HoursError as exc:
            errors["hours"] = reason_of(exc)
    if "alert_text" in raw:
        alert = _text(raw["alert_text"])
        if alert is not None and len(alert) > MAX_ALERT:
            errors["alert_text"] = Text(
                "alert text has %(n)s characters; at most %(limit)s fit",
                n=len(alert),
                limit=MAX_ALERT,
            )
        values["alert_text"] = alert
    if "languages" in raw:
        try:
            values["languages"] = _check_languages(raw["languages"])
        except ValueError as exc:
            errors["languages"] = reason_of(exc)
    if "description" in raw:
        values["description"] = _text(raw["description"])
    return values, errors


def check_organization(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    name = _text(raw.get("name"))
    if name is None:
        errors["name"] = Text("missing organisation name")
    elif len(name) > MAX_NAME:
        errors["name"] = Text("organisation name is longer than %(n)s characters", n=MAX_NAME)
    else:
        values["name"] = name
    for key, limit in (("description", None), ("url", MAX_URL), ("email", MAX_EMAIL)):
        if key in raw:
            text = _text(raw[key])
            if text is not None and limit is not None and len(text) > limit:
                errors[key] = Text("%(field)s is longer than %(n)s characters", field=key, n=limit)
            elif key == "email" and text is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+", text):
                errors[key] = Text("email %(email)s is not an address", email=repr(text))
            values[key] = text
    return values, errors


# --- writing ------------------------------------------------------------------------------


def _location_for(
    session: Session,
    organization: Organization,
    municipality: Municipality,
    hint: tuple[str | None, str | None] | None,
) -> Location:
    location = session.scalar(
        select(Location)
        .where(
            Location.organization_id == organization.id,
            Location.municipality_id == municipality.id,
        )
        .order_by(Location.id)
        .limit(1)
    )
    if location is None:
        name, address = hint or (None, None)
        location = Location(
            organization_id=organization.id,
            municipality_id=municipality.id,
            name=(name or f"{organization.name}, {municipality.name}")[:MAX_NAME],
            address=address[:300] if address else None,
        )
        session.add(location)
        session.flush()
    return location


def write_service(
    session: Session,
    service: Service | None,
    values: dict[str, Any],
    lookup: Lookup,
    hints: dict[str, tuple[str | None, str | None]] | None = None,
) -> Service:
    """Set the checked ``values`` on ``service`` (a new one when None); returns it."""
    if service is None:
        service = Service(
            organization=lookup.organizations[values["organization"]],
            category=lookup.categories[values["category"]],
            name=values["service"],
            status=ServiceStatus.ACTIVE.value,
            languages=[],
        )
        session.add(service)
    for name, value in values.items():
        if name == "organization":
            service.organization = lookup.organizations[value]
        elif name == "service":
            service.name = value
        elif name == "category":
            service.category = lookup.categories[value]
        elif name in ("status", "alert_text", "description"):
            setattr(service, name, value)
        elif name == "languages":
            service.languages = list(value)
        elif name == "phone":
            kept = {phone.number: phone for phone in service.phones}
            service.phones = [kept.get(number) or Phone(number=number) for number in value]
        elif name == "hours":
            service.schedules = [
                Schedule(weekday=day, opens_at=opens, closes_at=closes)
                for day, opens, closes in value
            ]
    if "municipality" in values:
        session.flush()
        links = [
            link
            for link in service.locations
            if link.location.municipality.code in values["municipality"]
        ]
        have = {link.location.municipality.code for link in links}
        for code in values["municipality"]:
            if code not in have:
                location = _location_for(
                    session,
                    service.organization,
                    lookup.municipalities[code],
                    (hints or {}).get(code),
                )
                links.append(ServiceAtLocation(location=location))
        service.locations = links
    session.flush()
    lookup.services[(service.organization.name, service.name)] = service
    return service


def changes_between(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Fields of ``new`` whose value differs from ``old``: name -> (old, new) as text."""
    return {
        name: (display(name, old.get(name)), display(name, value))
        for name, value in new.items()
        if old.get(name) != value
    }


# --- the dry run --------------------------------------------------------------------------


@dataclass
class Raw:
    """One record read from a file, before checking: where it was, its fields, what the reader
    itself found wrong, and location names/addresses by municipality code (for new locations)."""

    row: str
    values: dict[str, Any]
    errors: dict[str, str] = field(default_factory=dict)
    hints: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)


@dataclass
class PlanRow:
    row: str  # where in the file: "row 3", "services[2]"
    kind: str  # "service" or "organization"
    name: str  # "Organisation / Service" or "Organisation"
    outcome: str  # added, changed, unchanged, refused
    changes: dict[str, tuple[str, str]] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    hints: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)


@dataclass
class Plan:
    format: str
    rows: list[PlanRow] = field(default_factory=list)

    def of(self, outcome: str) -> list[PlanRow]:
        return [row for row in self.rows if row.outcome == outcome]

    @property
    def counts(self) -> dict[str, int]:
        counts = {outcome: 0 for outcome in (ADDED, CHANGED, UNCHANGED, REFUSED)}
        for row in self.rows:
            counts[row.outcome] += 1
        return counts

    @property
    def to_apply(self) -> int:
        return sum(1 for row in self.rows if row.outcome in (ADDED, CHANGED))

    @property
    def fingerprint(self) -> str:
        """Digest of everything the dry run shows: applying checks it has not changed."""
        shown = [
            [r.row, r.kind, r.name, r.outcome, sorted(r.changes.items()), r.reasons]
            for r in self.rows
        ]
        blob = json.dumps([self.format, shown], ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def decode(content: bytes | str) -> str:
    """File content as text (UTF-8, with or without BOM), or ``ImportFileError``."""
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ImportFileError(
                Text('the file is not UTF-8 text: save it as UTF-8 ("CSV UTF-8" in a spreadsheet)')
            ) from None
    if "\x00" in content:  # PostgreSQL stores no NUL: refused here, not when applying
        raise ImportFileError(Text("the file contains NUL characters (\\0); it is not a text file"))
    return content.removeprefix("\ufeff")


def dry_run(session: Session, content: bytes | str, fmt: str) -> Plan:
    """What importing ``content`` (format ``csv`` or ``hsds``) would do. Reads, never writes.

    Raises ``ImportFileError`` when the file as a whole cannot be read."""
    text = decode(content)
    lookup = Lookup(session)
    organizations: list[Raw]
    services: list[Raw]
    if fmt == "csv":
        organizations, services = [], read_csv(text)
    elif fmt == "hsds":
        organizations, services = read_hsds(text, lookup)
    else:
        raise ImportFileError(Text("unknown format %(format)s: use csv or hsds", format=repr(fmt)))
    plan = Plan(fmt)
    organization_rows: dict[str, PlanRow] = {}
    for raw in organizations:
        values, errors = check_organization(raw.values)
        errors = {**errors, **raw.errors}
        name = values.get("name") or raw.values.get("name") or "?"
        row = PlanRow(raw.row, "organization", str(name), REFUSED, values=values)
        if errors:
            row.reasons = list(errors.values())
        elif name in organization_rows:
            row.reasons = [Text("same organisation as %(row)s", row=organization_rows[name].row)]
        elif name in lookup.organizations:
            row.changes = changes_between(organization_values(lookup.organizations[name]), values)
            row.outcome = CHANGED if row.changes else UNCHANGED
        else:
            row.changes = changes_between({}, values)
            row.outcome = ADDED
        organization_rows.setdefault(str(name), row)
        plan.rows.append(row)
    seen: dict[tuple[str, str], str] = {}
    new_organizations: dict[str, PlanRow] = {}
    for raw in services:
        values, errors = check_service(raw.values, lookup)
        errors = {**errors, **raw.errors}
        organization = values.get("organization") or _text(raw.values.get("organization")) or "?"
        service_name = values.get("service") or _text(raw.values.get("service")) or "?"
        key = (organization, service_name)
        row = PlanRow(
            raw.row,
            "service",
            f"{organization} / {service_name}",
            REFUSED,
            values=values,
            hints=raw.hints,
        )
        plan.rows.append(row)
        listed = organization_rows.get(organization)
        if errors:
            row.reasons = list(errors.values())
        elif key in seen:
            row.reasons = [Text("same organisation and service as %(row)s", row=seen[key])]
        elif listed is not None and listed.outcome == REFUSED:
            row.reasons = [Text("its organisation (%(row)s) is refused", row=listed.row)]
        if row.reasons:
            continue
        seen[key] = raw.row
        existing = lookup.services.get(key)
        if existing is not None:
            row.changes = changes_between(service_values(existing), values)
            row.outcome = CHANGED if row.changes else UNCHANGED
            continue
        row.changes = changes_between({}, values)
        row.outcome = ADDED
        if organization not in lookup.organizations and listed is None:
            if organization not in new_organizations:
                new_organizations[organization] = PlanRow(
                    raw.row,
                    "organization",
                    organization,
                    ADDED,
                    changes={"name": ("", organization)},
                    values={"name": organization},
                )
            row.changes["organization"] = (
                "",
                Text("%(name)s (new organisation)", name=organization),
            )
    # New organisations come first, so applying adds them before their services.
    plan.rows[len(organizations) : len(organizations)] = new_organizations.values()
    return plan


def apply(session: Session, plan: Plan) -> dict[str, int]:
    """Write the added and changed rows of ``plan`` (made by ``dry_run`` in this transaction).
    Returns counts by kind and outcome, e.g. ``{"services_added": 3, ...}``."""
    lookup = Lookup(session)
    counts = {
        f"{kind}_{outcome}": 0
        for kind in ("organizations", "services")
        for outcome in (ADDED, CHANGED, UNCHANGED, REFUSED)
    }
    for row in plan.rows:
        kind = "organizations" if row.kind == "organization" else "services"
        counts[f"{kind}_{row.outcome}"] += 1
        if row.outcome not in (ADDED, CHANGED):
            continue
        if row.kind == "organization":
            organization = lookup.organizations.get(row.values["name"])
            if organization is None:
                organization = Organization(name=row.values["name"])
                session.add(organization)
            for name, value in row.values.items():
                setattr(organization, name, value)
            session.flush()
            lookup.organizations[organization.name] = organization
        else:
            key = (row.values["organization"], row.values["service"])
            existing = lookup.services.get(key)
            values = row.values
            if existing is not None:  # only what changes: phones and hours keep their rows
                values = {k: v for k, v in row.values.items() if k in row.changes}
            write_service(session, existing, values, lookup, row.hints)
    return counts


# --- readers ------------------------------------------------------------------------------

#: What a spreadsheet may run as a formula when a cell starts with it (OWASP's CSV injection
#: list); phone numbers (+506...) are quoted too, which also keeps them from becoming numbers.
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _guard(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA) else cell


def _unguard(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:2] in _FORMULA else cell


def read_csv(text: str) -> list[Raw]:
    """CSV rows as ``Raw`` records ("row 2" is the first row after the header)."""
    first = text.split("\n", 1)[0]
    delimiter = next((d for d in (",", ";", "\t") if d in first), ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise ImportFileError(Text("the file is empty")) from None
    except csv.Error as exc:
        raise ImportFileError(Text("not a CSV file: %(error)s", error=str(exc))) from None
    unknown = [h for h in header if h and h not in CSV_COLUMNS]
    if unknown:
        raise ImportFileError(
            Text(
                "unknown column(s) %(unknown)s; the columns are %(columns)s",
                unknown=", ".join(unknown),
                columns=", ".join(CSV_COLUMNS),
            )
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ImportFileError(Text("missing column(s) %(columns)s", columns=", ".join(missing)))
    twice = sorted({h for h in header if h and header.count(h) > 1})
    if twice:
        raise ImportFileError(Text("column(s) given twice: %(columns)s", columns=", ".join(twice)))
    rows = []
    try:
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            values = {
                column: _unguard(cells[i].strip()) if i < len(cells) else ""
                for i, column in enumerate(header)
                if column
            }
            errors: dict[str, str] = {}
            if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
                errors["row"] = Text(
                    "%(cells)s cells but %(columns)s columns", cells=len(cells), columns=len(header)
                )
            rows.append(Raw(Text("row %(n)s", n=number), values, errors))
    except csv.Error as exc:
        raise ImportFileError(Text("not a CSV file: %(error)s", error=str(exc))) from None
    return rows


def _objects(doc: dict[str, Any], name: str) -> list[dict[str, Any]]:
    items = doc.get(name) or []
    if not isinstance(items, list):
        raise ImportFileError(Text("%(name)s must be an array", name=name))
    return [item if isinstance(item, dict) else {} for item in items]


def _nested(item: dict[str, Any], name: str) -> list[dict[str, Any]]:
    items = item.get(name)
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _id(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _schedule_rows(schedule: dict[str, Any]) -> list[tuple[int, str, str]]:
    """HSDS weekly schedule -> rows, or ValueError with the reason."""
    label = Text("schedule %(id)s", id=_id(schedule.get("id")) or Text("(no id)"))
    freq = (_text(schedule.get("freq")) or "WEEKLY").upper()
    if freq != "WEEKLY":
        raise ValueError(
            Text("%(where)s: only weekly schedules (freq WEEKLY) can be imported", where=label)
        )
    days = [d.upper() for d in _split(schedule.get("byday"), ",")]
    if not days or any(d not in WEEKDAY_CODES for d in days):
        raise ValueError(
            Text(
                "%(where)s: byday %(byday)s must be days like MO,TU",
                where=label,
                byday=repr(schedule.get("byday")),
            )
        )
    opens = _clock(str(schedule.get("opens_at") or ""))
    closes = _clock(str(schedule.get("closes_at") or ""))
    if opens is None or closes is None:
        raise ValueError(
            Text("%(where)s: opens_at and closes_at must be times like 08:00", where=label)
        )
    return [(WEEKDAY_CODES.index(d) + 1, opens, closes) for d in days]


def _location_place(location: dict[str, Any], lookup: Lookup) -> tuple[str | None, str | None]:
    """(municipality code, None) or (None, reason)."""
    label = Text(
        "location %(name)s",
        name=_text(location.get("name")) or _id(location.get("id")) or Text("(no id)"),
    )
    code = _text(location.get("x_municipality_code"))
    if code is not None:
        if code.lower() in lookup.municipalities:
            return code.lower(), None
        return None, Text(
            "%(where)s: unknown municipality code %(code)s", where=label, code=repr(code)
        )
    addresses = _nested(location, "addresses") or _nested(location, "physical_addresses")
    address = addresses[0] if addresses else {}
    city = _text(address.get("city")) or _text(address.get("locality"))
    if city is None:
        return None, Text(
            "%(where)s: no x_municipality_code and no address city to find its municipality",
            where=label,
        )
    place = lookup.municipality_named(city, _text(address.get("country")))
    if place is None:
        return None, Text(
            "%(where)s: city %(city)s is not a known municipality", where=label, city=repr(city)
        )
    return place.code, None


def _address_text(location: dict[str, Any]) -> str | None:
    addresses = _nested(location, "addresses")
    if not addresses:
        return None
    parts = [_text(addresses[0].get(k)) for k in ("address_1", "address_2")]
    return ", ".join(p for p in parts if p) or None


#: The JSON escape of NUL: a backslash that is not itself escaped, then u0000.
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000", re.IGNORECASE)


def read_hsds(text: str, lookup: Lookup) -> tuple[list[Raw], list[Raw]]:
    """HSDS 3 JSON as (organisation records, service records) in the CSV fields."""
    if _JSON_NUL.search(text):
        raise ImportFileError(Text("the file contains NUL characters (\\u0000)"))
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFileError(
            Text("not JSON: %(error)s at line %(line)s", error=exc.msg, line=exc.lineno)
        ) from None
    except RecursionError:
        raise ImportFileError(Text("not HSDS: arrays or objects nested too deep")) from None
    if not isinstance(doc, dict) or not any(k in doc for k in ("services", "organizations")):
        raise ImportFileError(
            Text(
                "expected a JSON object with arrays organizations, services, locations,"
                " service_at_locations, phones, schedules"
            )
        )
    services = _objects(doc, "services")
    organizations: list[Raw] = []
    organization_names: dict[str, tuple[str, str]] = {}  # id -> (name, row)
    for i, item in enumerate(_objects(doc, "organizations"), start=1):
        row = f"organizations[{i}]"
        values = {
            "name": item.get("name"),
            "description": item.get("description"),
            "url": item.get("website", item.get("url")),
            "email": item.get("email"),
        }
        raw = Raw(row, values)
        if not _id(item.get("id")):
            raw.errors["id"] = Text("missing id")
        else:
            organization_names[_id(item["id"])] = (_text(item.get("name")) or "?", row)
        organizations.append(raw)

    locations = {_id(loc.get("id")): loc for loc in _objects(doc, "locations") if loc.get("id")}
    links: dict[str, list[dict[str, Any]]] = {}
    link_service: dict[str, str] = {}
    phones: dict[str, list[str]] = {}
    schedules: dict[str, list[dict[str, Any]]] = {}
    languages: dict[str, list[Any]] = {}
    attributes: dict[str, list[dict[str, Any]]] = {}
    for service in services:
        sid = _id(service.get("id"))
        for link in _nested(service, "service_at_locations"):
            link.setdefault("service_id", sid)
            if isinstance(link.get("location"), dict):
                nested = link["location"]
                locations.setdefault(_id(nested.get("id")), nested)
                link.setdefault("location_id", nested.get("id"))
            links.setdefault(sid, []).append(link)
            link_service[_id(link.get("id"))] = sid
        phones.setdefault(sid, []).extend(
            str(p.get("number") or "") for p in _nested(service, "phones")
        )
        schedules.setdefault(sid, []).extend(_nested(service, "schedules"))
        attributes.setdefault(sid, []).extend(_nested(service, "attributes"))
        if isinstance(service.get("languages"), list):
            languages.setdefault(sid, []).extend(service["languages"])
    for link in _objects(doc, "service_at_locations"):
        links.setdefault(_id(link.get("service_id")), []).append(link)
        link_service[_id(link.get("id"))] = _id(link.get("service_id"))
    for phone in _objects(doc, "phones"):
        if phone.get("service_id"):
            phones.setdefault(_id(phone["service_id"]), []).append(str(phone.get("number") or ""))
    for schedule in _objects(doc, "schedules"):
        sid = _id(schedule.get("service_id")) or link_service.get(
            _id(schedule.get("service_at_location_id")), ""
        )
        if sid:
            schedules.setdefault(sid, []).append(schedule)
    for language in _objects(doc, "languages"):
        if language.get("service_id"):
            languages.setdefault(_id(language["service_id"]), []).append(language)
    for attribute in _objects(doc, "attributes"):
        if attribute.get("link_id") and attribute.get("link_entity", "service") == "service":
            attributes.setdefault(_id(attribute["link_id"]), []).append(attribute)
    terms = {_id(t.get("id")): t for t in _objects(doc, "taxonomy_terms") if t.get("id")}

    records = []
    for i, service in enumerate(services, start=1):
        sid = _id(service.get("id"))
        raw = Raw(f"services[{i}]", {"service": service.get("name")})
        if not sid:
            raw.errors["id"] = Text("missing id")
        organization_id = _id(service.get("organization_id"))
        if not organization_id:
            raw.errors["organization"] = Text("missing organization_id")
        elif organization_id not in organization_names:
            raw.errors["organization"] = Text(
                "organization_id %(id)s is not in organizations", id=repr(organization_id)
            )
        else:
            raw.values["organization"] = organization_names[organization_id][0]
        candidates = [str(service["x_category"])] if _text(service.get("x_category")) else []
        for attribute in attributes.get(sid, []):
            term = attribute.get("taxonomy_term")
            if not isinstance(term, dict):
                term = terms.get(_id(attribute.get("taxonomy_term_id")), {})
            candidates += [str(term[k]) for k in ("code", "term", "name") if _text(term.get(k))]
        category = lookup.category_for(candidates)
        if category is not None:
            raw.values["category"] = category.code
        elif candidates:
            raw.errors["category"] = Text("unknown category %(code)s", code=repr(candidates[0]))
        else:
            raw.errors["category"] = Text("no category: set x_category or a taxonomy term")
        codes = []
        for link in links.get(sid, []) if sid else []:
            location = locations.get(_id(link.get("location_id")))
            if location is None:
                raw.errors["municipality"] = Text(
                    "location_id %(id)s is not in locations", id=repr(_id(link.get("location_id")))
                )
                continue
            code, reason = _location_place(location, lookup)
            if code is None:
                raw.errors["municipality"] = reason or Text("no municipality")
                continue
            codes.append(code)
            raw.hints.setdefault(code, (_text(location.get("name")), _address_text(location)))
        if not codes and "municipality" not in raw.errors:
            raw.errors["municipality"] = Text("not at any location (service_at_locations)")
        raw.values["municipality"] = codes
        status = _text(service.get("status")) or ServiceStatus.ACTIVE.value
        raw.values["status"] = ServiceStatus.INACTIVE.value if status == "defunct" else status
        raw.values["alert_text"] = service.get("alert")
        raw.values["description"] = service.get("description")
        raw.values["phone"] = phones.get(sid, []) if sid else []
        rows: list[tuple[int, str, str]] = []
        for schedule in schedules.get(sid, []) if sid else []:
            try:
                rows += _schedule_rows(schedule)
            except ValueError as exc:
                raw.errors["hours"] = reason_of(exc)
        raw.values["hours"] = rows
        raw.values["languages"] = [
            language.get("code") if isinstance(language, dict) else language
            for language in languages.get(sid, [])
        ]
        records.append(raw)
    return organizations, records


# --- export -------------------------------------------------------------------------------


def _all_services(session: Session) -> list[Service]:
    lookup = Lookup(session)
    return sorted(lookup.services.values(), key=lambda s: (s.organization.name, s.name))


def export_csv(session: Session) -> str:
    """Every service as a CSV row, in the columns ``read_csv`` reads."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for service in _all_services(session):
        values = service_values(service)
        writer.writerow([_guard(display(column, values[column])) for column in CSV_COLUMNS])
    return out.getvalue()


def _uid(kind: str, key: Any) -> str:
    return str(uuid.uuid5(HSDS_NAMESPACE, f"{kind}:{key}"))


def export_hsds(session: Session) -> dict[str, Any]:
    """The directory as HSDS 3 tables, with the extension fields ``x_category`` (services) and
    ``x_municipality_code`` (locations)."""
    services = _all_services(session)
    about = taxonomy.load().hsds
    organizations = list(session.scalars(select(Organization).order_by(Organization.name)))
    categories = list(session.scalars(select(Category).order_by(Category.position, Category.code)))
    locations = list(
        session.scalars(
            select(Location)
            .options(selectinload(Location.municipality))
            .order_by(Location.organization_id, Location.id)
        )
    )
    doc: dict[str, Any] = {
        "organizations": [
            {
                "id": _uid("organization", o.id),
                "name": o.name,
                "description": o.description or "",
                "website": o.url,
                "email": o.email,
            }
            for o in organizations
        ],
        "services": [],
        "locations": [],
        "service_at_locations": [],
        "phones": [],
        "schedules": [],
        "taxonomies": [
            {
                "id": _uid("taxonomy", "ruta"),
                "name": about["name"],
                "description": about["description"],
                "version": about["version"],
            }
        ],
        "taxonomy_terms": [
            {
                "id": _uid("category", c.id),
                "code": c.code,
                "name": c.names.get("en") or next(iter(c.names.values()), c.code),
                "description": " / ".join(c.names.values()),
                "taxonomy": about["name"],
                "taxonomy_id": _uid("taxonomy", "ruta"),
                "language": "en" if "en" in c.names else next(iter(c.names), "es"),
            }
            for c in categories
        ],
    }
    for location in locations:
        place = location.municipality
        doc["locations"].append(
            {
                "id": _uid("location", location.id),
                "organization_id": _uid("organization", location.organization_id),
                "location_type": "physical",
                "name": location.name,
                "addresses": [
                    {
                        "id": _uid("address", location.id),
                        "location_id": _uid("location", location.id),
                        "address_1": location.address or "",
                        "city": place.name,
                        "state_province": place.admin_area or "",
                        "postal_code": "",
                        "country": place.country,
                        "address_type": "physical",
                    }
                ],
                "x_municipality_code": place.code,
            }
        )
    for service in services:
        sid = _uid("service", service.id)
        doc["services"].append(
            {
                "id": sid,
                "organization_id": _uid("organization", service.organization_id),
                "name": service.name,
                "description": service.description,
                "status": service.status,
                "alert": service.alert_text,
                "x_category": service.category.code,
                "languages": [
                    {
                        "id": _uid("language", f"{service.id}:{code}"),
                        "service_id": sid,
                        "code": code,
                    }
                    for code in service.languages or []
                ],
                "attributes": [
                    {
                        "id": _uid("attribute", service.id),
                        "link_id": sid,
                        "link_type": "category",
                        "link_entity": "service",
                        "taxonomy_term_id": _uid("category", service.category_id),
                    }
                ],
            }
        )
        for link in service.locations:
            doc["service_at_locations"].append(
                {
                    "id": _uid("service_at_location", link.id),
                    "service_id": sid,
                    "location_id": _uid("location", link.location_id),
                }
            )
        for phone in service.phones:
            doc["phones"].append(
                {
                    "id": _uid("phone", phone.id),
                    "service_id": sid,
                    "number": phone.number,
                    "description": phone.description,
                }
            )
        spans: dict[tuple[str, str], list[int]] = {}
        for schedule in service.schedules:
            spans.setdefault((schedule.opens_at, schedule.closes_at), []).append(schedule.weekday)
        for (opens, closes), days in sorted(spans.items(), key=lambda item: min(item[1])):
            doc["schedules"].append(
                {
                    "id": _uid("schedule", f"{service.id}:{opens}-{closes}"),
                    "service_id": sid,
                    "freq": "WEEKLY",
                    "wkst": "MO",
                    "byday": ",".join(WEEKDAY_CODES[d - 1] for d in sorted(set(days))),
                    "opens_at": opens,
                    "closes_at": closes,
                }
            )
    return doc


def export(session: Session, fmt: str) -> tuple[str, str, str]:
    """(content, mimetype, file name) of the directory in ``fmt`` (csv or hsds)."""
    if fmt == "csv":
        # With a byte order mark, spreadsheets open it as UTF-8; the import skips it.
        return "\ufeff" + export_csv(session), "text/csv", "ruta-directory.csv"
    if fmt == "hsds":
        content = json.dumps(export_hsds(session), ensure_ascii=False, indent=2)
        return content, "application/json", "ruta-directory-hsds.json"
    raise ValueError(f"unknown format {fmt!r}")
