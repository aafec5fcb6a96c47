"""Anonymous figures: counts below 5 never shown, medians only over 5, unmet needs, scope."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from ruta import policy
from ruta.db import db
from ruta.figures import week_of
from ruta.models import (
    Case,
    Category,
    Location,
    Municipality,
    Service,
    ServiceAtLocation,
)
from tests.admin.conftest import login


def add_cases(
    category: str,
    number: int,
    *,
    place: str = "cr-upala",
    answered_after_hours: list[float] | None = None,
) -> None:
    created = datetime.now(UTC) - timedelta(hours=12)
    with db.transaction() as session:
        municipality = session.scalar(select(Municipality).where(Municipality.code == place))
        assert municipality is not None
        for i in range(number):
            delay = answered_after_hours[i] if answered_after_hours else None
            session.add(
                Case(
                    reference=uuid.uuid4().hex[:6].upper(),
                    category_code=category,
                    municipality_id=municipality.id,
                    country=municipality.country,
                    urgency="standard",
                    status="accepted" if delay is not None else "forwarded",
                    created_at=created,
                    accepted_at=created + timedelta(hours=delay) if delay is not None else None,
                )
            )


def page(client: Any, **query: str) -> str:
    response = client.get("/admin/figures/", query_string=query)
    assert response.status_code == 200
    return str(response.get_data(as_text=True))


def cell(html: str, category: str, country: str | None = None) -> str:
    """The count shown for the cases ``add_cases`` made, in the week they fall in for a viewer
    of ``country`` (weeks are in the viewer's time zone; an admin's is the policy's default)."""
    week = week_of(datetime.now(UTC) - timedelta(hours=12), policy.load().timezone(country))
    found = re.search(rf'data-week="{week}" data-category="{category}">([^<]*)<', html)
    assert found, f"no cell for {category} in week {week}"
    return found.group(1)


def response_row(html: str, category: str) -> tuple[str, str]:
    found = re.search(
        rf'<tr data-category="{category}">.*?class="accepted">([^<]*)<.*?class="median">([^<]*)<',
        html,
        re.S,
    )
    assert found, category
    return found.group(1), found.group(2).strip()


def test_counts_below_five_are_never_shown(client: Any, accounts: dict[str, str]) -> None:
    add_cases("health", 4)
    add_cases("documents", 5)
    login(client, accounts["admin"])
    html = page(client)
    assert cell(html, "health") == "&lt;5"
    assert cell(html, "documents") == "5"
    add_cases("health", 1)
    assert cell(page(client), "health") == "5"


def test_the_median_time_to_an_answer_needs_five_answered_requests(
    client: Any, accounts: dict[str, str]
) -> None:
    add_cases("documents", 5, answered_after_hours=[1, 2, 3, 4, 50])
    add_cases("health", 4, answered_after_hours=[1, 1, 1, 1])
    login(client, accounts["viewer"])
    html = page(client)
    assert response_row(html, "documents") == ("5", "3.0 h")
    accepted, median = response_row(html, "health")
    assert accepted == "&lt;5" and median.startswith("not shown")


def kind_names(language: str) -> dict[str, str]:
    with db.transaction() as session:
        return {c.code: c.names[language] for c in session.scalars(select(Category))}


def served_in(place: str) -> set[str]:
    with db.transaction() as session:
        return set(
            session.scalars(
                select(Category.code)
                .join(Service, Service.category_id == Category.id)
                .join(ServiceAtLocation, ServiceAtLocation.service_id == Service.id)
                .join(Location, Location.id == ServiceAtLocation.location_id)
                .join(Municipality, Municipality.id == Location.municipality_id)
                .where(Municipality.code == place, Service.status == "active")
            )
        )


def test_needs_with_no_service_in_the_directory(
    app: Flask, client: Any, accounts: dict[str, str]
) -> None:
    with db.transaction() as session:
        codes = list(session.scalars(select(Category.code)))
    served = served_in("cr-upala")
    unserved = sorted(set(codes) - served)
    assert served and unserved, "the demo directory has both kinds in Upala"
    add_cases(unserved[0], 6)
    add_cases(sorted(served)[0], 6)
    login(client, accounts["admin"])
    html = page(client)
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td class=\"count\">([^<]*)</td>", html)
    with db.transaction() as session:
        english = {c.code: c.names["en"] for c in session.scalars(select(Category))}
    assert ("Upala", english[unserved[0]], "6") in rows
    assert all(label != english[sorted(served)[0]] for _, label, _ in rows)


def test_a_coordinator_counts_only_their_country(client: Any, accounts: dict[str, str]) -> None:
    add_cases("food", 5, place="gt-esquipulas")
    add_cases("documents", 5, place="cr-upala")
    login(client, accounts["coordinator"])  # Costa Rica
    html = page(client)
    assert 'data-category="food"' not in html
    assert cell(html, "documents", "CR") == "5"
    assert "Esquipulas" not in html  # not even offered as a filter
    login(client, accounts["admin"])
    assert cell(page(client), "food") == "5"


def test_one_municipality_at_a_time(client: Any, accounts: dict[str, str]) -> None:
    add_cases("documents", 5, place="cr-upala")
    add_cases("shelter", 5, place="cr-los-chiles")
    login(client, accounts["admin"])
    html = page(client, municipality="cr-los-chiles")
    assert cell(html, "shelter") == "5"
    assert 'data-category="documents"' not in html


def test_requests_and_the_directory_share_one_taxonomy(
    client: Any, accounts: dict[str, str]
) -> None:
    """Issue 10, seen 7: a "documents" request in Upala, where the directory has a documents
    service, is no unmet need; figures name each kind, never its code."""
    from tests.conftest import TwilioPhone
    from tests.test_referrals import ask_for_help

    ask_for_help(TwilioPhone(client, "+50688001201"), kind="2")  # documents
    ask_for_help(TwilioPhone(client, "+50688001202"), kind="4")  # personal safety
    assert "documents" in served_in("cr-upala")
    login(client, accounts["admin"])
    html = page(client)
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td class=\"count\">([^<]*)</td>", html)
    names = kind_names("en")
    assert rows == [("Upala", names["safety"], "&lt;5")]
    assert cell(html, "documents") == "&lt;5"
    headings = re.findall(r'<th scope="col">([^<]*)</th>', html)
    assert names["documents"] in headings and names["safety"] in headings
    assert not {"documents", "legal", "safety"} & set(headings)


def test_kinds_are_named_in_the_viewers_language_only(
    app: Flask, client: Any, accounts: dict[str, str]
) -> None:
    """Issue 14: no more "Salud" beside "safety": every column head in one language."""
    add_cases("health", 5)
    add_cases("safety", 6)
    login(client, accounts["admin"])
    english = re.findall(r'<th scope="col">([^<]*)</th>', page(client))
    app.config["RUTA_ADMIN_LANGUAGE"] = "es"
    try:
        spanish = re.findall(r'<th scope="col">([^<]*)</th>', page(client))
    finally:
        app.config["RUTA_ADMIN_LANGUAGE"] = "en"
    en, es = kind_names("en"), kind_names("es")
    assert {en["health"], en["safety"]} <= set(english)
    assert not {es["health"], es["safety"]} & set(english)
    assert {es["health"], es["safety"]} <= set(spanish)
    assert not {en["health"], en["safety"]} & set(spanish)
    assert "Semana" in spanish and "Week" in english


def test_the_page_says_which_time_zone_its_weeks_are_in(
    client: Any, accounts: dict[str, str]
) -> None:
    login(client, accounts["coordinator"])  # Costa Rica
    html = page(client)
    zone = policy.load().timezone("CR").key
    assert re.search(rf'id="figures-zone">[^<]*{re.escape(zone)}', html)


def test_a_week_starts_on_monday_in_the_viewers_zone() -> None:
    costa_rica = policy.load().timezone("CR")  # UTC-6
    monday_utc = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)  # still Sunday evening in Costa Rica
    assert week_of(monday_utc) == "2026-W49"
    assert week_of(monday_utc, costa_rica) == "2026-W48"


def bars(html: str, category: str) -> str:
    found = re.search(
        rf'<figure class="chart-box" data-category="{category}">(.*?)</figure>', html, re.S
    )
    assert found, f"no chart for {category}"
    return found.group(1)


def test_the_chart_draws_a_small_count_hatched_never_at_its_height(
    client: Any, accounts: dict[str, str]
) -> None:
    add_cases("health", 3)
    add_cases("documents", 7)
    login(client, accounts["admin"])
    html = page(client)
    health, documents = bars(html, "health"), bars(html, "documents")
    assert "<svg" in health and 'role="img"' in health and "<title id=" in health
    week = week_of(datetime.now(UTC) - timedelta(hours=12), policy.load().timezone(None))
    # The week with 3 requests: a hatched bar whose hover says "<5", never 3.
    assert f"<title>{week}: &lt;5</title>" in health
    assert 'data-value="3"' not in health and f"{week}: 3<" not in health
    # Every hatched bar has one height (the minimum's line), so heights tell nothing.
    heights = set(re.findall(r'class="bar suppressed">.*?height="([\d.]+)"', health))
    assert len(heights) == 1
    assert f'data-value="7"><title>{week}: 7</title>' in documents
    assert "suppressed" in documents  # the other weeks (0) look like any count below 5


def test_the_csv_download_applies_the_suppression(client: Any, accounts: dict[str, str]) -> None:
    add_cases("health", 3, answered_after_hours=[1, 2, 3])
    add_cases("documents", 6, answered_after_hours=[1, 2, 3, 4, 5, 6])
    login(client, accounts["viewer"])
    html = page(client)
    assert 'id="download-requests"' in html
    response = client.get("/admin/figures/requests.csv?weeks=4")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    text = response.get_data(as_text=True).lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text)))
    names = kind_names("en")
    head = rows[0]
    assert head[0].startswith("Week") and policy.load().timezone(None).key in head[0]
    week = week_of(datetime.now(UTC) - timedelta(hours=12), policy.load().timezone(None))
    line = next(r for r in rows if r[0] == week)
    assert line[head.index(names["health"])] == "<5"
    assert line[head.index(names["documents"])] == "6"
    assert len(rows) == 1 + 4  # a row per week of the period, no totals
    assert "3" not in {c for r in rows[1:] for c in r[1:]}
    responses = list(
        csv.reader(io.StringIO(client.get("/admin/figures/responses.csv").get_data(as_text=True)))
    )
    by_kind = {r[0]: r for r in responses[1:]}
    assert by_kind[names["health"]][1:] == ["<5", ""]
    assert by_kind[names["documents"]][1:] == ["6", "3.5"]
    assert client.get("/admin/figures/everything.csv").status_code == 404


def test_the_csv_download_is_scoped_like_the_page(client: Any, accounts: dict[str, str]) -> None:
    add_cases("food", 6, place="gt-esquipulas")
    login(client, accounts["coordinator"])  # Costa Rica
    rows = list(
        csv.reader(io.StringIO(client.get("/admin/figures/requests.csv").get_data(as_text=True)))
    )
    assert kind_names("en")["food"] not in rows[0]
    login(client, accounts["admin"])
    rows = list(
        csv.reader(io.StringIO(client.get("/admin/figures/requests.csv").get_data(as_text=True)))
    )
    assert kind_names("en")["food"] in rows[0]
    login(client, accounts["focal_point"])  # no figures for a focal point
    assert client.get("/admin/figures/requests.csv").status_code == 403
