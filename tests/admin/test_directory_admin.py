"""The directory admin: search, edit, temporary closure, import with a dry run, export, access.

Every test leaves the demo directory as it found it (``restore``).
"""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from admin import directory as admin_directory
from ruta import directory, directory_io
from ruta.db import db
from ruta.models import AuditEntry, Location, Municipality, Organization, Service, ServiceStatus
from tests.admin.conftest import csrf_token, login
from tests.test_directory_io import HEADER, directory_restored


@pytest.fixture()
def restore(app: Flask) -> Iterator[None]:
    with directory_restored():
        yield


@pytest.fixture()
def editor(client: Any, accounts: dict[str, str]) -> Any:
    assert login(client, accounts["directory_editor"]).status_code == 302
    return client


def service_id(name: str) -> int:
    with db.transaction() as session:
        found = session.scalar(select(Service.id).where(Service.name == name))
        assert found is not None
        return found


def token_of(client: Any, url: str) -> str:
    return csrf_token(client.get(url).get_data(as_text=True))


def audits(action: str) -> list[AuditEntry]:
    with db.transaction() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def hours_fields(rows: Any) -> dict[str, str]:
    """Opening times as the hours editor posts them: ``hours-<day>-<n>-opens`` / ``-closes``."""
    fields: dict[str, str] = {}
    for weekday, opens, closes in sorted(rows):
        n = 0
        while f"hours-{weekday}-{n}-opens" in fields:
            n += 1
        fields[f"hours-{weekday}-{n}-opens"] = opens
        fields[f"hours-{weekday}-{n}-closes"] = closes
    return fields


def service_form(client: Any, sid: int, **changes: Any) -> dict[str, Any]:
    """The edit form of a service as the browser would submit it, with ``changes``."""
    with db.transaction() as session:
        found = session.get(Service, sid)
        assert found is not None
        values = directory_io.service_values(found)
        form: dict[str, Any] = {
            "service": found.name,
            "organization_id": str(found.organization_id),
            "category": values["category"],
            "status": found.status,
            "alert_text": found.alert_text or "",
            "municipality": list(values["municipality"]),
            "phone": "\n".join(values["phone"]),
            **hours_fields(values["hours"]),
            "languages": directory_io.display("languages", values["languages"]),
            "description": found.description or "",
        }
    form["csrf_token"] = token_of(client, f"/admin/directory/services/{sid}")
    form.update(changes)
    return form


def test_search_by_name_municipality_category_and_status(editor: Any) -> None:
    page = editor.get("/admin/directory/?q=ebais").get_data(as_text=True)
    assert "Ebais Upala Centro" in page and "Ebais La Cruz" in page
    assert "Comedor comunitario Upala" not in page
    page = editor.get("/admin/directory/?municipality=cr-upala&category=health").get_data(
        as_text=True
    )
    assert "Ebais Upala Centro" in page and "Consulta movil Upala" in page
    assert "Ebais Los Chiles" not in page and "Comedor comunitario Upala" not in page
    page = editor.get("/admin/directory/?status=temporarily+closed").get_data(as_text=True)
    assert "Clinica temporal Upala Norte" in page and "Cerrado por obras" in page
    assert "Ebais Upala Centro" not in page
    assert "Clinica Ejemplo" in editor.get("/admin/directory/?q=clinica+ejemplo").get_data(
        as_text=True
    )


def test_bad_hours_are_refused_with_a_clear_error_and_nothing_saved(
    editor: Any, restore: None
) -> None:
    sid = service_id("Ebais Upala Centro")
    form = service_form(editor, sid, description="cambiado")
    form["hours-2-0-opens"], form["hours-2-0-closes"] = "16:00", "08:00"  # closes before it opens
    form["hours-3-0-opens"], form["hours-3-0-closes"] = "08:00", ""  # no closing time
    form["hours-4-0-opens"], form["hours-4-0-closes"] = "8 de la mañana", "16:00"
    response = editor.post(f"/admin/directory/services/{sid}", data=form)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'id="error-hours"' in page and "the hours of 3 days are wrong" in page
    assert re.search(
        r'id="hours-2-error" role="alert">it opens at 16:00: it must close later<', page
    )
    assert "give both the opening and the closing time" in page
    assert "times are hours and minutes" in page
    assert 'value="8 de la mañana"' in page  # what was typed stays in the form
    assert 'name="hours-2-0-opens" id="hours-2-0-opens" value="16:00"' in page
    with db.transaction() as session:
        found = session.get(Service, sid)
        assert found is not None
        assert directory.format_hours(found, "es") == "Lun-Vie 7-16"
        assert found.description is None
    assert audits("directory.service.update") == []


def test_a_temporarily_closed_service_is_listed_with_its_notice_until_reopened(
    editor: Any, restore: None
) -> None:
    sid = service_id("Ebais Upala Centro")

    def listed_by_sms() -> str:
        with db.transaction() as session:
            found = directory.search(session, "cr-upala", "health", "es")
            return {s.id: directory.format_entry(s, "es") for s in found}.get(sid, "")

    assert "Lun-Vie 7-16" in listed_by_sms()
    closed = ServiceStatus.TEMPORARILY_CLOSED.value
    no_alert = editor.post(
        f"/admin/directory/services/{sid}", data=service_form(editor, sid, status=closed)
    )
    assert no_alert.status_code == 400 and "write the alert text" in no_alert.get_data(as_text=True)
    too_long = editor.post(
        f"/admin/directory/services/{sid}",
        data=service_form(editor, sid, status=closed, alert_text="x" * 321),
    )
    assert too_long.status_code == 400
    assert "at most 320 fit" in too_long.get_data(as_text=True)
    assert "Cerrado" not in listed_by_sms()
    response = editor.post(
        f"/admin/directory/services/{sid}",
        data=service_form(editor, sid, status=closed, alert_text="Cerrado por lluvias"),
    )
    assert response.status_code == 302
    assert "Cerrado por ahora: Cerrado por lluvias" in listed_by_sms()  # the notice reaches people
    page = editor.get(f"/admin/directory/services/{sid}").get_data(as_text=True)
    assert "Temporarily closed" in page and "Cerrado por lluvias" in page
    (entry,) = audits("directory.service.update")
    assert entry.object_id == str(sid) and entry.actor.endswith("directory_editor@ruta.test")
    assert entry.detail["changes"] == {
        "status": ["active", closed],
        "alert_text": ["", "Cerrado por lluvias"],
    }
    response = editor.post(
        f"/admin/directory/services/{sid}",
        data=service_form(editor, sid, status="active", alert_text=""),
    )
    assert response.status_code == 302
    assert "Lun-Vie 7-16" in listed_by_sms() and "Cerrado" not in listed_by_sms()


def test_editing_phones_hours_and_municipalities(editor: Any, restore: None) -> None:
    sid = service_id("Consulta movil Upala")
    form = service_form(
        editor,
        sid,
        phone="+506 0000 0103\n+506 0000 0199",
        municipality=["cr-upala", "cr-los-chiles"],
    )
    form = {k: v for k, v in form.items() if not k.startswith("hours-")}
    form.update(hours_fields([(2, "09:00", "13:00"), (4, "09:00", "13:00"), (6, "8:00", "10:00")]))
    assert editor.post(f"/admin/directory/services/{sid}", data=form).status_code == 302
    with db.transaction() as session:
        found = session.get(Service, sid)
        assert found is not None
        assert [p.number for p in found.phones] == ["+506 0000 0103", "+506 0000 0199"]
        assert directory.format_hours(found, "es") == "Mar y Jue 9-13. Sab 8-10"
        assert sid in [s.id for s in directory.search(session, "cr-los-chiles", "health", "es")]
        added = [link.location.name for link in found.locations]
        assert "Clinica Ejemplo, Los Chiles" in added


def test_creating_an_organisation_a_service_and_editing_a_location(
    editor: Any, restore: None
) -> None:
    token = token_of(editor, "/admin/directory/organizations")
    response = editor.post(
        "/admin/directory/organizations",
        data={"csrf_token": token, "name": "Org Admin Prueba", "email": "not an address"},
    )
    assert response.status_code == 400 and "is not an address" in response.get_data(as_text=True)
    response = editor.post(
        "/admin/directory/organizations",
        data={"csrf_token": token, "name": "Org Admin Prueba", "email": "a@org.example"},
    )
    assert response.status_code == 302
    with db.transaction() as session:
        org_id = session.scalar(select(Organization.id).filter_by(name="Org Admin Prueba"))
    assert org_id is not None
    duplicate = editor.post(
        "/admin/directory/organizations", data={"csrf_token": token, "name": "Clinica Ejemplo"}
    )
    assert duplicate.status_code == 400

    page = editor.get(f"/admin/directory/services/new?organization_id={org_id}")
    assert page.status_code == 200
    form = {
        "csrf_token": token,
        "service": "Servicio admin prueba",
        "organization_id": str(org_id),
        "category": "food",
        "status": "active",
        "municipality": ["gt-esquipulas"],
        "phone": "+502 0000 9999",
        **hours_fields([(day, "12:00", "14:00") for day in range(1, 6)]),
        "languages": "es",
        "alert_text": "",
        "description": "",
    }
    response = editor.post("/admin/directory/services/new", data=form)
    assert response.status_code == 302
    new_id = int(response.headers["Location"].rsplit("/", 1)[1])
    with db.transaction() as session:
        assert [s.id for s in directory.search(session, "gt-esquipulas", "food", "es")] == [new_id]
        location_id = session.scalar(select(Location.id).where(Location.organization_id == org_id))
    assert editor.post("/admin/directory/services/new", data=form).status_code == 400  # same name
    assert [e.object_id for e in audits("directory.service.create")] == [str(new_id)]

    response = editor.post(
        f"/admin/directory/locations/{location_id}",
        data={
            "csrf_token": token,
            "name": "Sede central",
            "address": "Calle 5",
            "municipality": "gt-esquipulas",
        },
    )
    assert response.status_code == 302
    page = editor.get(f"/admin/directory/locations/{location_id}").get_data(as_text=True)
    assert "Sede central" in page and "Servicio admin prueba" in page
    (entry,) = audits("directory.location.update")
    assert entry.detail["changes"]["name"] == ["Org Admin Prueba, Esquipulas", "Sede central"]


def test_category_names_per_language(editor: Any, restore: None) -> None:
    page = editor.get("/admin/directory/categories").get_data(as_text=True)
    found = re.findall(r'name="(name-\d+-\w+)" id="[^"]+" value="([^"]*)"', page)
    fields = {name: html.unescape(value) for name, value in found}  # "Women&#39;s support"
    health = next(k for k, v in fields.items() if v == "Salud")
    data = {**fields, "csrf_token": csrf_token(page), health: "Salud y clinicas"}
    assert editor.post("/admin/directory/categories", data=data).status_code == 302
    assert "Salud y clinicas" in editor.get("/admin/directory/categories").get_data(as_text=True)
    (entry,) = audits("directory.category.update")
    assert (
        entry.detail["before"]["es"] == "Salud"
        and entry.detail["after"]["es"] == "Salud y clinicas"
    )
    english = health.replace("-es", "-en")
    emptied = {**data, health: "", english: ""}
    response = editor.post("/admin/directory/categories", data=emptied)
    assert response.status_code == 400 and "give at least one name" in response.get_data(
        as_text=True
    )


GOOD_AND_BAD = HEADER + (
    "Org Import Admin,Servicio importado,health,cr-upala,active,+506 0000 9801,"
    "1-5 08:00-16:00,,es,\n"
    "Org Import Admin,Servicio sin lugar,health,xx-none,active,+506 0000 9802,"
    "1-5 08:00-16:00,,es,\n"
)


def upload(client: Any, content: str | bytes, fmt: str = "csv", name: str = "d.csv") -> Any:
    data = content.encode() if isinstance(content, str) else content
    return client.post(
        "/admin/directory/import",
        data={
            "csrf_token": token_of(client, "/admin/directory/import"),
            "format": fmt,
            "file": (io.BytesIO(data), name),
        },
        content_type="multipart/form-data",
    )


def apply_form(page: str) -> dict[str, str]:
    return {
        name: re.search(rf'name="{name}" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        for name in ("csrf_token", "token", "fingerprint")
    }


def count_services() -> int:
    with db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Service)) or 0)


def test_an_import_dry_run_shows_added_and_refused_rows_then_applies_the_good_one(
    editor: Any, restore: None
) -> None:
    services = count_services()
    response = upload(editor, GOOD_AND_BAD)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert 'id="dry-run-result"' in page and 'id="apply-import"' in page
    rows = re.findall(r'<tr class="(added|changed|refused)" data-row="([^"]+)">', page)
    assert ("added", "row 2") in rows and ("refused", "row 3") in rows
    assert ("added", "row 2") in rows and len([r for r in rows if r[0] == "refused"]) == 1
    assert re.search(r'class="reason">unknown municipality code &#39;xx-none&#39;<', page)
    assert count_services() == services  # the dry run wrote nothing
    with db.transaction() as session:
        assert session.scalar(select(Organization).filter_by(name="Org Import Admin")) is None

    response = editor.post("/admin/directory/import/apply", data=apply_form(page))
    assert response.status_code == 302
    assert count_services() == services + 1
    with db.transaction() as session:
        names = [s.name for s in directory.search(session, "cr-upala", "health", "es")]
        assert "Servicio importado" in names
        assert session.scalar(select(Service).filter_by(name="Servicio sin lugar")) is None
    (entry,) = audits("directory.import")
    assert entry.detail["services_added"] == 1 and entry.detail["services_refused"] == 1
    assert entry.detail["organizations_added"] == 1 and entry.detail["filename"] == "d.csv"
    again = editor.post("/admin/directory/import/apply", data=apply_form(page))
    assert again.status_code == 409 and "expired" in again.get_data(as_text=True)


def test_applying_is_refused_when_the_dry_run_no_longer_holds(editor: Any, restore: None) -> None:
    content = HEADER + (
        "Clinica Ejemplo,Ebais Upala Centro,health,cr-upala,inactive,+506 0000 0102,"
        "1-5 07:00-16:00,,es,\n"
    )
    page = upload(editor, content).get_data(as_text=True)
    assert '<tr class="changed"' in page
    with db.transaction() as session:  # someone edits the service meanwhile
        found = session.scalar(select(Service).filter_by(name="Ebais Upala Centro"))
        assert found is not None
        found.description = "editado por otra persona"
    response = editor.post("/admin/directory/import/apply", data=apply_form(page))
    assert response.status_code == 409
    assert "changed since this dry run" in response.get_data(as_text=True)
    with db.transaction() as session:
        found = session.scalar(select(Service).filter_by(name="Ebais Upala Centro"))
        assert found is not None and found.status == "active"
    assert audits("directory.import") == []


def test_a_bad_file_is_refused_on_the_import_page(editor: Any) -> None:
    response = upload(editor, "name,colour\nx,1\n")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'id="import-error"' in page and "unknown column(s) name, colour" in page
    response = upload(editor, "{", fmt="hsds", name="d.json")
    assert response.status_code == 400 and "not JSON" in response.get_data(as_text=True)
    assert upload(editor, "x", fmt="xml").status_code == 400
    assert upload(editor, "x" * (2 * 1024 * 1024 + 1)).status_code == 413


@pytest.mark.parametrize("fmt", ["csv", "hsds"])
def test_export_downloads_and_imports_back_with_no_change(editor: Any, fmt: str) -> None:
    # The demo's HSDS export is larger than the app's 64 KB request limit: imports get more.
    response = editor.get(f"/admin/directory/export/{fmt}")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    if fmt == "hsds":
        assert json.loads(response.data)["services"]
    page = upload(editor, response.data, fmt).get_data(as_text=True)
    assert "Applying would add <strong" in page
    summary = re.search(r'id="dry-run-summary">(.*?)</p>', page, re.S)
    assert summary is not None
    text = re.sub(r"<[^>]+>", "", summary.group(1))
    assert "add 0" in text and "change 0" in text and "0 refused" in text
    assert 'id="apply-import"' not in page
    assert [e.detail["format"] for e in audits("directory.export")] == [fmt]
    assert editor.get("/admin/directory/export/xml").status_code == 404


def test_an_hsds_import_through_the_admin(editor: Any, restore: None) -> None:
    from tests.test_directory_io import hsds_sample

    page = upload(editor, json.dumps(hsds_sample()), "hsds", "d.json").get_data(as_text=True)
    assert page.count('<tr class="refused"') == 3 and page.count('<tr class="added"') == 2
    assert "city &#39;Atlantis&#39; is not a known municipality" in page
    assert editor.post("/admin/directory/import/apply", data=apply_form(page)).status_code == 302
    with db.transaction() as session:
        found = directory.search(session, "cr-los-chiles", "health", "es")
        assert "Consulta HSDS" in [s.name for s in found]


def test_a_viewer_sees_the_directory_but_cannot_change_it(
    client: Any, accounts: dict[str, str], restore: None
) -> None:
    login(client, accounts["viewer"])
    sid = service_id("Ebais Upala Centro")
    page = client.get(f"/admin/directory/services/{sid}")
    assert page.status_code == 200
    assert "<fieldset disabled>" in page.get_data(as_text=True)
    assert 'id="save-service"' not in page.get_data(as_text=True)
    form = service_form(client, sid, status="inactive")
    assert client.post(f"/admin/directory/services/{sid}", data=form).status_code == 403
    token = form["csrf_token"]
    assert client.post("/admin/directory/categories", data={"csrf_token": token}).status_code == 403
    assert client.get("/admin/directory/import").status_code == 403
    assert client.get("/admin/directory/export/csv").status_code == 200
    with db.transaction() as session:
        found = session.get(Service, sid)
        assert found is not None and found.status == "active"


def test_a_post_without_a_csrf_token_is_refused(editor: Any, restore: None) -> None:
    sid = service_id("Ebais Upala Centro")
    form = service_form(editor, sid, status="inactive")
    del form["csrf_token"]
    assert editor.post(f"/admin/directory/services/{sid}", data=form).status_code == 400
    response = editor.post(
        "/admin/directory/import",
        data={"format": "csv", "file": (io.BytesIO(GOOD_AND_BAD.encode()), "d.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    with db.transaction() as session:
        found = session.get(Service, sid)
        assert found is not None and found.status == "active"


def test_a_name_that_pushes_a_screen_over_budget_is_saved_with_a_warning(
    editor: Any, restore: None
) -> None:
    from ruta.models import Municipality

    with db.transaction() as session:
        escazu = session.scalar(select(Municipality).where(Municipality.code == "cr-escazu"))
        assert escazu is not None
        mid, name = escazu.id, escazu.name
    url = f"/admin/directory/municipalities/{mid}"
    long = (  # 120 characters, the most a name holds
        "San José de la Montaña de los Ángeles del Río Frío, Cañón Grande de la Frontera "
        "Norte y la Alajuelita Oriental de Escazú"
    )
    assert len(long) == 120
    try:
        normal = editor.post(
            url,
            data={"csrf_token": token_of(editor, url), "name": "Escazú Centro"},
            follow_redirects=True,
        ).get_data(as_text=True)
        assert "Saved." in normal and "too long" not in normal and "Escazú Centro" in normal
        warned = editor.post(
            url, data={"csrf_token": token_of(editor, url), "name": long}, follow_redirects=True
        ).get_data(as_text=True)
        text = html.unescape(warned)
        assert "Saved." in text  # the warning never refuses the save
        [warning] = re.findall(r"Warning: (.*?)</", text, re.S)[:1]
        assert "too long" in warning and "node[municipality] lang[" in warning  # the screen
        assert long in warning  # and the text that breaks it
        with db.transaction() as session:
            saved = session.get(Municipality, mid)
            assert saved is not None and saved.name == long
        assert audits("directory.municipality.update")
    finally:
        with db.transaction() as session:
            back = session.get(Municipality, mid)
            assert back is not None
            back.name = name


def add_organisations(prefix: str, number: int) -> None:
    with db.transaction() as session:
        upala = session.scalar(select(Municipality).where(Municipality.code == "cr-upala"))
        assert upala is not None
        for i in range(number):
            organisation = Organization(name=f"{prefix} {i:03d}")
            session.add(organisation)
            session.flush()
            session.add(
                Location(
                    organization_id=organisation.id,
                    name=f"Sede {prefix} {i:03d}",
                    municipality_id=upala.id,
                )
            )


def names_in(page: str, table: str) -> list[str]:
    body = page.split(f'<table id="{table}">', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<td><a href=\"[^\"]+\">([^<]+)</a></td>", body)


def test_organisations_and_locations_are_searched_and_paged(editor: Any, restore: None) -> None:
    """Issue 14: the directory's lists had no pagination."""
    size = admin_directory.PAGE_SIZE
    add_organisations("Asociacion Paginada", size + 7)
    first = editor.get("/admin/directory/organizations?q=paginada").get_data(as_text=True)
    shown = names_in(first, "organizations")
    assert len(shown) == size and shown[0] == "Asociacion Paginada 000"
    assert f"{size + 7} found" in first and "Page 1 of 2" in first
    assert 'href="/admin/directory/organizations?q=paginada&amp;page=2"' in first
    second = editor.get("/admin/directory/organizations?q=paginada&page=2").get_data(as_text=True)
    assert names_in(second, "organizations")[0] == f"Asociacion Paginada {size:03d}"
    assert len(names_in(second, "organizations")) == 7 and "Page 2 of 2" in second
    # A page past the end shows the last; nonsense shows the first (never an error).
    assert "Page 2 of 2" in editor.get(
        "/admin/directory/organizations?q=paginada&page=99"
    ).get_data(as_text=True)
    assert editor.get("/admin/directory/organizations?page=x").status_code == 200
    # Locations: by name, address, organisation or municipality, paged the same way.
    located = editor.get("/admin/directory/locations?q=paginada").get_data(as_text=True)
    assert len(names_in(located, "locations")) == 2 * size  # each row: location, organisation
    assert "Page 1 of 2" in located
    one = editor.get("/admin/directory/locations?q=Paginada+005").get_data(as_text=True)
    assert names_in(one, "locations") == ["Sede Asociacion Paginada 005", "Asociacion Paginada 005"]
    # A % is a character searched for, not a pattern matching everything.
    nothing = editor.get("/admin/directory/organizations?q=%25").get_data(as_text=True)
    assert "No organisation matches." in nothing and "0 found" in nothing


def test_services_and_municipalities_are_paged(editor: Any) -> None:
    page = editor.get("/admin/directory/?q=upala").get_data(as_text=True)
    assert re.search(r'id="list-count">\d+ services?<', page)
    assert 'class="pager"' not in page  # one page: no page links
    places = editor.get("/admin/directory/municipalities?q=upala").get_data(as_text=True)
    assert "Upala" in places and "Esquipulas" not in places


def test_the_hours_editor_shows_a_row_per_weekday_with_the_service_hours(editor: Any) -> None:
    sid = service_id("Ebais Upala Centro")  # Lun-Vie 7-16
    page = editor.get(f"/admin/directory/services/{sid}").get_data(as_text=True)
    rows = re.findall(r'<th scope="row" id="day-(\d)">([^<]+)</th>', page)
    assert [day for day, _name in rows] == list("1234567")
    assert [name for _day, name in rows][:2] == ["Monday", "Tuesday"]
    for day in range(1, 6):
        assert f'id="hours-{day}-0-opens" value="07:00"' in page
        assert f'id="hours-{day}-0-closes" value="16:00"' in page
    assert 'id="hours-6-0-opens" value=""' in page  # Saturday: closed
    assert 'type="time"' in page and 'name="hours"' not in page  # no more "1-5 08:00-16:00"


def test_a_break_at_midday_and_overlapping_times(editor: Any, restore: None) -> None:
    sid = service_id("Consulta movil Upala")
    form = {k: v for k, v in service_form(editor, sid).items() if not k.startswith("hours-")}
    form.update(hours_fields([(1, "08:00", "12:00"), (1, "13:00", "16:00"), (7, "0:00", "23:59")]))
    assert editor.post(f"/admin/directory/services/{sid}", data=form).status_code == 302
    with db.transaction() as session:
        found = session.get(Service, sid)
        assert found is not None
        spans = sorted((s.weekday, s.opens_at, s.closes_at) for s in found.schedules)
    assert [(d, str(o)[:5], str(c)[:5]) for d, o, c in spans] == [
        (1, "08:00", "12:00"), (1, "13:00", "16:00"), (7, "00:00", "23:59")
    ]  # fmt: skip
    form.update(hours_fields([(1, "08:00", "12:00"), (1, "11:00", "16:00")]))
    refused = editor.post(f"/admin/directory/services/{sid}", data=form)
    assert refused.status_code == 400
    assert "two opening times of this day overlap" in refused.get_data(as_text=True)


def test_the_municipality_picker_is_a_list_of_checkboxes_with_a_filter(editor: Any) -> None:
    sid = service_id("Ebais Upala Centro")
    page = editor.get(f"/admin/directory/services/{sid}").get_data(as_text=True)
    assert '<select name="municipality"' not in page and " multiple" not in page
    assert re.search(r'<input type="checkbox" name="municipality" value="cr-upala" checked>', page)
    assert re.search(r'<input type="checkbox" name="municipality" value="gt-esquipulas" >', page)
    assert 'id="municipality-filter"' in page and "directory.js" in page
    assert re.search(r'id="municipality-chosen"[^>]*>Chosen: Upala \(CR\)<', page)
