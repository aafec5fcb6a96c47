"""The service directory as the flows see it: menus of places and categories, services found."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from flows.context import Budget
from flows.model import Issue, Library
from flows.services import CaseRequest, Choice, OpenRequest, Routing
from flows.validate import Directory, validate_library
from ruta import cases, opening, questions, referrals, routing, taxonomy
from ruta import policy as policies
from ruta.models import (
    Category,
    Location,
    Municipality,
    Question,
    Service,
    ServiceAtLocation,
    ServiceStatus,
    Subscription,
    utcnow,
)
from ruta.policy import Policy
from ruta.sql import Tx

#: Most services one search returns (the flow pages them two or three to an SMS).
MAX_RESULTS = 9
#: Day names a person reads without guessing (``Ma`` is Tuesday or a word); ISO weekday order.
WEEKDAYS = {
    "es": ["Lun", "Mar", "Mie", "Jue", "Vie", "Sab", "Dom"],
    "en": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
}
HOURS_WORDS = {
    "es": {"always": "24 horas", "and": "y", "closed": "Cerrado por ahora"},
    "en": {"always": "24 hours", "and": "and", "closed": "Closed for now"},
}
#: The longest part of a closed service's notice shown in a listing.
NOTICE_CHARS = 40


def _time(hhmm: str) -> str:
    hours, minutes = hhmm.split(":")
    return str(int(hours)) + ("" if minutes == "00" else f":{minutes}")


def _all_day(opens: str, closes: str) -> bool:
    return opens == "00:00" and closes in ("23:59", "24:00", "00:00")


def format_hours(service: Service, language: str) -> str:
    """Weekly hours in words people read: ``Lun-Vie 8-16``, ``Mar y Jue 9-13``, ``24 horas``
    (every day, all day), ``Lun-Vie 24 horas``."""
    names = WEEKDAYS.get(language, WEEKDAYS["en"])
    words = HOURS_WORDS.get(language, HOURS_WORDS["en"])
    by_hours: dict[str, list[int]] = {}
    for schedule in service.schedules:
        if _all_day(schedule.opens_at, schedule.closes_at):
            span = words["always"]
        else:
            span = f"{_time(schedule.opens_at)}-{_time(schedule.closes_at)}"
        by_hours.setdefault(span, []).append(schedule.weekday)
    parts = []
    for span, days in by_hours.items():
        days = sorted(set(days))
        if days == list(range(1, 8)) and span == words["always"]:
            parts.append(span)
            continue
        if len(days) > 2 and days == list(range(days[0], days[-1] + 1)):
            label = f"{names[days[0] - 1]}-{names[days[-1] - 1]}"
        elif len(days) == 2:
            label = f"{names[days[0] - 1]} {words['and']} {names[days[1] - 1]}"
        else:
            label = ", ".join(names[d - 1] for d in days)
        parts.append(f"{label} {span}")
    return ". ".join(parts)


def short_notice(text: str, limit: int = NOTICE_CHARS) -> str:
    """A closed service's notice cut at a word, to keep a listing within its SMS."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 3].rsplit(" ", 1)[0]
    return f"{cut}..."


def format_entry(service: Service, language: str) -> str:
    """One service as a line of a listing: name (organisation), phone, hours; a temporarily
    closed one says so, with the start of its notice, instead of its hours."""
    phone = service.phones[0].number if service.phones else ""
    parts = [service.name]
    if service.organization and service.organization.name not in service.name:
        parts[0] = f"{service.name} ({service.organization.name})"
    if phone:
        parts.append(f"Tel {phone}")
    if service.status == ServiceStatus.TEMPORARILY_CLOSED.value:
        closed = HOURS_WORDS.get(language, HOURS_WORDS["en"])["closed"]
        notice = short_notice(service.alert_text or "")
        parts.append(f"{closed}: {notice}" if notice else closed)
        return ". ".join(parts)
    hours = format_hours(service, language)
    if hours:
        parts.append(hours)
    return ". ".join(parts)


#: The choice that leads from a person's own country's places to the others'.
OTHER_COUNTRY = "other-country"
OTHER_COUNTRY_LABELS = {"es": "Otro pais", "en": "Another country"}

#: The topic that means every alert of a municipality, and its label in the menus.
GENERAL_TOPIC = "general"
GENERAL_TOPIC_LABELS = {"es": "Todo", "en": "Everything"}
#: What separates municipality and topic in a subscription's value (codes hold neither).
SUBSCRIPTION_SEPARATOR = ":"


def end_subscriptions(session: Session, contact_id: int, now: datetime) -> int:
    """End every active subscription of a contact (an opt-out); how many ended."""
    ended = 0
    for sub in session.scalars(
        select(Subscription).where(Subscription.contact_id == contact_id, Subscription.active)
    ):
        sub.active, sub.ended_at = False, now
        ended += 1
    return ended


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
    """Services at a location in the municipality, of the category: the active ones by name,
    then the temporarily closed ones (their notice is news people need too)."""
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
            Service.status.in_(
                [ServiceStatus.ACTIVE.value, ServiceStatus.TEMPORARILY_CLOSED.value]
            ),
        )
        .options(
            selectinload(Service.phones),
            selectinload(Service.schedules),
            selectinload(Service.organization),
        )
        .order_by(Service.status == ServiceStatus.TEMPORARILY_CLOSED.value, Service.name)
        .limit(MAX_RESULTS)
    )
    return list(session.scalars(query))


#: Tables whose writes bump the "directory" counter (migration 0011): what the cache below holds.
CACHED_TABLES = (
    "municipalities",
    "categories",
    "organizations",
    "services",
    "locations",
    "service_at_locations",
    "phones",
    "schedules",
)


class DirectoryCache:
    """The directory as menus and listings show it, kept by each web process.

    Valid for one value of the ``directory`` counter (``ruta.models.CacheVersion``), which a
    trigger bumps in every transaction that writes one of ``CACHED_TABLES``, whoever writes it
    (the admin, ``ruta`` commands, an import). The webhook reads the counter in the round trip
    that locks the contact (``seen``): a change is seen by the first message after its commit,
    and an unchanged directory costs no query at all. Filled on demand, one menu or one search
    at a time; thread-safe (gthread workers).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.version: int | None = None
        #: Bumped whenever the contents are dropped: a load that began before keeps its result
        #: to itself, so an older reading never lands in a newer cache.
        self._generation = 0
        self._places: list[tuple[str, Choice]] | None = None
        self._names: dict[str, str] | None = None
        self._categories: list[tuple[str, dict[str, str]]] | None = None
        self._found: dict[tuple[str, str, str], list[str]] = {}

    def seen(self, version: int | None) -> None:
        """The counter a message read. Newer than the cache: drop everything. Unknown (no
        counter row): drop everything and keep nothing."""
        if version is not None and self.version is not None and version <= self.version:
            return
        with self._lock:
            if version is None or self.version is None or version > self.version:
                self.version = version
                self._generation += 1
                self._places = self._names = self._categories = None
                self._found = {}

    def _keep(self, generation: int) -> bool:
        return self.version is not None and generation == self._generation

    def places(self, load: Callable[[], list[tuple[str, Choice]]]) -> list[tuple[str, Choice]]:
        found = self._places
        if found is None:
            generation = self._generation
            found = load()
            if self._keep(generation):
                self._places = found
        return found

    def name(self, code: str, load: Callable[[], list[tuple[str, Choice]]]) -> str | None:
        names = self._names
        if names is None:
            generation = self._generation
            names = {choice.value: choice.label for _, choice in self.places(load)}
            if self._keep(generation):
                self._names = names
        return names.get(code)

    def categories(
        self, load: Callable[[], list[tuple[str, dict[str, str]]]]
    ) -> list[tuple[str, dict[str, str]]]:
        found = self._categories
        if found is None:
            generation = self._generation
            found = load()
            if self._keep(generation):
                self._categories = found
        return found

    def search(self, key: tuple[str, str, str], load: Callable[[], list[str]]) -> list[str]:
        found = self._found.get(key)
        if found is None:
            generation = self._generation
            found = load()
            if self._keep(generation):
                with self._lock:
                    if generation == self._generation:
                        self._found[key] = found
        return list(found)


class DatabaseServices:
    """``flows.services.Services`` over the database, for one inbound message.

    Work the actions cause (outbox events to dispatch) collects in ``work`` for the caller to
    hand to RQ after commit. ``session`` may be a function that makes one: the webhooks pass
    one, and with a ``cache`` a step that only browses the directory never needs a session.
    """

    def __init__(
        self,
        session: Session | Callable[[], Session],
        *,
        channel: str,
        contact_id: int | None,
        number: str | None = None,
        now: datetime | None = None,
        policy: Policy | None = None,
        country: str | None = None,
        cache: DirectoryCache | None = None,
        tx: Tx | None = None,
    ) -> None:
        self._session = session
        self.tx = tx  # the webhook's transaction: a case is opened on its lean path
        self._country = country
        self.cache = cache
        self.channel = channel
        self.contact_id = contact_id
        self.number = number
        self.now = now or utcnow()
        self.policy = policy or policies.load()
        self.work = referrals.Work()
        self._municipalities: list[Choice] | None = None
        self._places_by_country: list[tuple[str, Choice]] = []
        self._categories: list[tuple[str, dict[str, str]]] | None = None
        # Subscriptions of a conversation without a contact (flow examples): never stored.
        self._detached: dict[tuple[str, str], str] = {}

    @property
    def session(self) -> Session:
        if not isinstance(self._session, Session):
            self._session = self._session()
        return self._session

    @property
    def country(self) -> str | None:
        """The country whose places are listed first: the phone's, or one the validator names."""
        if self._country is None and self.number:
            self._country = referrals.country_of(self.number)
        return self._country

    def _load_places(self) -> list[tuple[str, Choice]]:
        rows = self.session.execute(
            select(Municipality.country, Municipality.code, Municipality.name).order_by(
                Municipality.country, Municipality.name
            )
        )
        return [(country, Choice(code, name)) for country, code, name in rows]

    def _places(self) -> list[tuple[str, Choice]]:
        # A menu is listed when shown and again when answered: one query per message at most.
        if self._municipalities is None:
            if self.cache is not None:
                self._places_by_country = self.cache.places(self._load_places)
            else:
                self._places_by_country = self._load_places()
            self._municipalities = [choice for _, choice in self._places_by_country]
        return self._places_by_country

    def municipalities(self, language: str) -> list[Choice]:
        """The places of the phone's country first, the others behind "Otro pais"; every
        place when the phone's country has none (or the directory has no other country)."""
        places, own = self._places(), self.country
        home = [choice for country, choice in places if country == own]
        if not home or len(home) == len(places):
            return [choice for _, choice in places]
        label = OTHER_COUNTRY_LABELS.get(language, OTHER_COUNTRY_LABELS["en"])
        return [*home, Choice(OTHER_COUNTRY, label)]

    def other_municipalities(self, language: str) -> list[Choice]:
        """The places of every other country, by country."""
        places, own = self._places(), self.country
        return [choice for country, choice in places if country != own]

    def municipality_name(self, code: str) -> str | None:
        if self.cache is not None:
            return self.cache.name(code, self._load_places)
        return self.session.scalar(select(Municipality.name).where(Municipality.code == code))

    def _load_categories(self) -> list[tuple[str, dict[str, str]]]:
        rows = self.session.execute(
            select(Category.code, Category.names)
            .where(Category.listed.is_(True))
            .order_by(Category.position, Category.code)
        )
        return [(code, dict(names)) for code, names in rows]

    def categories(self, language: str) -> list[Choice]:
        if self._categories is None:
            if self.cache is not None:
                self._categories = self.cache.categories(self._load_categories)
            else:
                self._categories = self._load_categories()
        return [
            Choice(code, names.get(language) or next(iter(names.values()), code))
            for code, names in self._categories
        ]

    def _search(self, municipality: str, category: str, language: str) -> list[str]:
        found = search(self.session, municipality, category, language)
        return [format_entry(service, language) for service in found]

    def find_services(self, municipality: str, category: str, language: str) -> list[str]:
        if self.cache is not None:
            return self.cache.search(
                (municipality, category, language),
                lambda: self._search(municipality, category, language),
            )
        return self._search(municipality, category, language)

    def route(self, municipality: str, category: str, safe: bool) -> Routing | None:
        category = taxonomy.load().canonical(category) or category
        found = routing.resolve_place(self.session, municipality, category, self.now.date())
        if not found.reaches_anyone:
            if self.contact_id is not None:  # flow examples and the simulator count nothing
                referrals.record_unrouted(
                    self.session,
                    municipality,
                    category,
                    tier=self.policy.tier(category, safe),
                    channel=self.channel,
                    now=self.now,
                )
            return None
        return Routing(first=", ".join(found.first_organizations()))

    def create_case(self, request: CaseRequest) -> str | None:
        # A conversation that began on an older flow version may still answer an old code.
        category = taxonomy.load().canonical(request.category) or request.category
        request = dataclasses.replace(request, category=category)
        reference: str | None
        if self.tx is not None:  # the webhook's transaction: its lean path
            reference, work = opening.open_case(
                self.tx, request, contact_id=self.contact_id, now=self.now, policy=self.policy
            )
        else:
            case, work = referrals.open_case(
                self.session,
                request,
                contact_id=self.contact_id,
                now=self.now,
                policy=self.policy,
                reference=cases.new_reference(self.session),
            )
            reference = case.reference if case is not None else None
        self.work.merge(work)
        return reference

    def open_request(self, language: str) -> OpenRequest | None:
        if self.contact_id is None:
            return None
        case = referrals.open_case_of(self.session, self.contact_id)
        if case is None or case.consent_at is None:
            return None  # a case nobody was allowed to receive is completed by a new request
        return OpenRequest(case.reference, referrals.state_words(case, language))

    def update_request(
        self, *, shared_phone: bool | None, safe_times: str | None, note: str | None
    ) -> str | None:
        if self.contact_id is None:
            return None
        case = referrals.update_open_case(
            self.session,
            self.contact_id,
            shared_phone=shared_phone,
            safe_times=safe_times,
            note=note,
            now=self.now,
        )
        return case.reference if case is not None else None

    def emergency_numbers(self, language: str = "es") -> str:
        country = referrals.country_of(self.number) if self.number else None
        return self.policy.emergency_numbers(country, language)

    # alerts

    def alert_topics(self, language: str) -> list[Choice]:
        general = GENERAL_TOPIC_LABELS.get(language, GENERAL_TOPIC_LABELS["en"])
        return [Choice(GENERAL_TOPIC, general), *self.categories(language)]

    def _topic_label(self, topic: str, language: str) -> str:
        for choice in self.alert_topics(language):
            if choice.value == topic:
                return choice.label
        return topic

    # questions for a human

    def ask_question(self, text: str, language: str) -> str:
        reference = questions.new_reference(self.session)
        if self.contact_id is None:  # a flow example: no contact, nothing stored
            return reference
        self.session.add(
            Question(
                reference=reference,
                contact_id=self.contact_id,
                channel=self.channel,
                language=language,
                country=referrals.country_of(self.number) if self.number else None,
                text=text,
                created_at=self.now,
            )
        )
        return reference

    def subscribe(self, municipality: str, topic: str, language: str) -> bool:
        place = self.session.scalar(select(Municipality).where(Municipality.code == municipality))
        if place is None or topic not in {c.value for c in self.alert_topics(language)}:
            return False
        if self.contact_id is None:  # a flow example: no contact, nothing stored
            self._detached[(municipality, topic)] = language
            return True
        sub = self.session.scalar(
            select(Subscription).where(
                Subscription.contact_id == self.contact_id,
                Subscription.municipality_id == place.id,
                Subscription.topic == topic,
            )
        )
        if sub is None:
            sub = Subscription(
                contact_id=self.contact_id,
                municipality_id=place.id,
                topic=topic,
                created_at=self.now,
            )
            self.session.add(sub)
        sub.language, sub.active, sub.ended_at = language, True, None
        self.session.flush()
        return True

    def _active(self) -> list[tuple[str, str, str]]:
        """(municipality code, municipality name, topic) of each active subscription."""
        if self.contact_id is None:
            names = {c.value: c.label for _, c in self._places()}
            return [(m, names.get(m, m), t) for m, t in self._detached]
        rows = self.session.execute(
            select(Municipality.code, Municipality.name, Subscription.topic)
            .join(Municipality, Subscription.municipality_id == Municipality.id)
            .where(Subscription.contact_id == self.contact_id, Subscription.active)
            .order_by(Subscription.created_at, Subscription.id)
        )
        return [(str(code), str(name), str(topic)) for code, name, topic in rows]

    def subscriptions(self, language: str) -> list[Choice]:
        return [
            Choice(
                f"{code}{SUBSCRIPTION_SEPARATOR}{topic}",
                f"{name}: {self._topic_label(topic, language)}",
            )
            for code, name, topic in self._active()
        ]

    def unsubscribe(self, which: str) -> int:
        if which == "all":
            if self.contact_id is None:
                ended = len(self._detached)
                self._detached.clear()
                return ended
            return end_subscriptions(self.session, self.contact_id, self.now)
        code, _, topic = which.partition(SUBSCRIPTION_SEPARATOR)
        if self.contact_id is None:
            return 1 if self._detached.pop((code, topic), None) is not None else 0
        sub = self.session.scalar(
            select(Subscription)
            .join(Municipality, Subscription.municipality_id == Municipality.id)
            .where(
                Subscription.contact_id == self.contact_id,
                Municipality.code == code,
                Subscription.topic == topic,
                Subscription.active,
            )
        )
        if sub is None:
            return 0
        sub.active, sub.ended_at = False, self.now
        return 1


def directory_views(session: Session) -> list[Directory]:
    """The directory as the validator renders menus with it: all places, then each country's
    people's view (their places first)."""
    countries = sorted(set(session.scalars(select(Municipality.country))))
    return [Directory("", DatabaseServices(session, channel="validate", contact_id=None))] + [
        Directory(
            country, DatabaseServices(session, channel="validate", contact_id=None, country=country)
        )
        for country in countries
    ]


def budget_warnings(session: Session, library: Library, budgets: list[Budget]) -> list[Issue]:
    """What the directory in the database breaks: the validator's issues with the directory's
    menus rendered, less those the flows have without it (a flow's own fault, not a name's)."""
    without = {str(i) for i in validate_library(library, budgets)}
    found = validate_library(library, budgets, directory_views(session))
    return [i for i in found if i.error and str(i) not in without]
