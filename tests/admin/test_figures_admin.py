"""Anonymous figures: counts below 5 never shown, medians only over 5, unmet needs, scope."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

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


def cell(html: str, category: str) -> str:
    week = week_of(datetime.now(UTC) - timedelta(hours=12))
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
        spanish = {c.code: c.names["es"] for c in session.scalars(select(Category))}
    assert ("Upala", spanish[unserved[0]], "6") in rows
    assert all(label != spanish[sorted(served)[0]] for _, label, _ in rows)


def test_a_coordinator_counts_only_their_country(client: Any, accounts: dict[str, str]) -> None:
    add_cases("food", 5, place="gt-esquipulas")
    add_cases("documents", 5, place="cr-upala")
    login(client, accounts["coordinator"])  # Costa Rica
    html = page(client)
    assert 'data-category="food"' not in html
    assert cell(html, "documents") == "5"
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
    assert rows == [("Upala", "Seguridad personal", "&lt;5")]
    assert cell(html, "documents") == "&lt;5"
    headings = re.findall(r"<th>([^<]*)</th>", html)
    assert "Documentos y tramites" in headings and "Seguridad personal" in headings
    assert not {"documents", "legal", "safety"} & set(headings)
