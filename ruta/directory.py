"""The service directory as the flows see it: menus of places and categories, services found."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from flows.services import CaseRequest, Choice
from ruta import cases, referrals
from ruta import policy as policies
from ruta.models import (
    Category,
    Location,
    Municipality,
    Service,
    ServiceAtLocation,
    ServiceStatus,
    utcnow,
)
from ruta.policy import Policy

#: Most services one search returns (the flow pages them two or three to an SMS).
MAX_RESULTS = 9
WEEKDAYS = {
    "es": ["Lu", "Ma", "Mi", "Ju", "Vi", "Sa", "Do"],
    "en": ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"],
}


def _time(hhmm: str) -> str:
    hours, minutes = hhmm.split(":")
    return str(int(hours)) + ("" if minutes == "00" else f":{minutes}")


def format_hours(service: Service, language: str) -> str:
    """Weekly hours, compact: days with the same hours are grouped (``Lu-Vi 8-16``)."""
    names = WEEKDAYS.get(language, WEEKDAYS["en"])
    by_hours: dict[str, list[int]] = {}
    for schedule in service.schedules:
        span = f"{_time(schedule.opens_at)}-{_time(schedule.closes_at)}"
        by_hours.setdefault(span, []).append(schedule.weekday)
    parts = []
    for span, days in by_hours.items():
        days = sorted(set(days))
        if len(days) > 2 and days == list(range(days[0], days[-1] + 1)):
            label = f"{names[days[0] - 1]}-{names[days[-1] - 1]}"
        else:
            label = ",".join(names[d - 1] for d in days)
        parts.append(f"{label} {span}")
    return " ".join(parts)


def format_entry(service: Service, language: str) -> str:
    phone = service.phones[0].number if service.phones else ""
    parts = [service.name]
    if service.organization and service.organization.name not in service.name:
        parts[0] = f"{service.name} ({service.organization.name})"
    if phone:
        parts.append(f"Tel {phone}")
    hours = format_hours(service, language)
    if hours:
        parts.append(hours)
    return ". ".join(parts)


def full_service_loading() -> tuple[Any, ...]:
    """Loader options for a service with everything an editor or an export shows."""
    return (
        selectinload(Service.organization),
        selectinload(Service.category),
        selectinload(Service.phones),
        selectinload(Service.schedules),
        selectinload(Service.locations)
        .selectinload(ServiceAtLocation.location)
        .selectinload(Location.municipality),
    )


def search(
    session: Session, municipality_code: str, category_code: str, language: str
) -> list[Service]:
    """Active services at a location in the municipality, of the category, by name."""
    # EXISTS rather than DISTINCT: a service at two locations of one place is listed once, and
    # PostgreSQL cannot compare the JSON columns DISTINCT would need.
    in_place = (
        select(ServiceAtLocation.id)
        .join(Location, ServiceAtLocation.location_id == Location.id)
        .join(Municipality, Location.municipality_id == Municipality.id)
        .where(ServiceAtLocation.service_id == Service.id, Municipality.code == municipality_code)
        .exists()
    )
    query = (
        select(Service)
        .join(Category, Service.category_id == Category.id)
        .where(
            in_place,
            Category.code == category_code,
            Service.status == ServiceStatus.ACTIVE.value,
        )
        .options(
            selectinload(Service.phones),
            selectinload(Service.schedules),
            selectinload(Service.organization),
        )
        .order_by(Service.name)
        .limit(MAX_RESULTS)
    )
    return list(session.scalars(query))


class DatabaseServices:
    """``flows.services.Services`` over the database, for one inbound message.

    Work the actions cause (outbox events to dispatch) collects in ``work`` for the caller to
    hand to RQ after commit.
    """

    def __init__(
        self,
        session: Session,
        *,
        channel: str,
        contact_id: int | None,
        number: str | None = None,
        now: datetime | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.session = session
        self.channel = channel
        self.contact_id = contact_id
        self.number = number
        self.now = now or utcnow()
        self.policy = policy or policies.load()
        self.work = referrals.Work()
        self._municipalities: list[Choice] | None = None
        self._categories: list[Category] | None = None

    def municipalities(self, language: str) -> list[Choice]:
        # A menu is listed when shown and again when answered: one query per message.
        if self._municipalities is None:
            rows = self.session.scalars(
                select(Municipality).order_by(Municipality.country, Municipality.name)
            )
            self._municipalities = [Choice(m.code, m.name) for m in rows]
        return self._municipalities

    def municipality_name(self, code: str) -> str | None:
        return self.session.scalar(select(Municipality.name).where(Municipality.code == code))

    def categories(self, language: str) -> list[Choice]:
        if self._categories is None:
            self._categories = list(
                self.session.scalars(select(Category).order_by(Category.position, Category.code))
            )
        return [
            Choice(c.code, c.names.get(language) or next(iter(c.names.values()), c.code))
            for c in self._categories
        ]

    def find_services(self, municipality: str, category: str, language: str) -> list[str]:
        found = search(self.session, municipality, category, language)
        return [format_entry(service, language) for service in found]

    def create_case(self, request: CaseRequest) -> str:
        case, work = referrals.open_case(
            self.session,
            request,
            contact_id=self.contact_id,
            now=self.now,
            policy=self.policy,
            reference=cases.new_reference(self.session),
        )
        self.work.merge(work)
        return case.reference

    def emergency_numbers(self) -> str:
        country = referrals.country_of(self.number) if self.number else None
        return self.policy.emergency_numbers(country)
