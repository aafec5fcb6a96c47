"""``ruta demo load``: the demo directory, loaded idempotently into a migrated database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

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

DEMO_FILE = Path(__file__).parent / "demo" / "directory.yaml"


def parse_hours(spec: str) -> list[tuple[int, str, str]]:
    """``"1-5 08:00-16:00; 6 09:00-12:00"`` -> (weekday, opens, closes) rows."""
    rows = []
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        days, span = part.split()
        opens, closes = span.split("-")
        for chunk in days.split(","):
            first, _, last = chunk.partition("-")
            for weekday in range(int(first), int(last or first) + 1):
                rows.append((weekday, opens, closes))
    return rows


def _get_or_add(session: Session, model: Any, lookup: dict[str, Any], **values: Any) -> Any:
    row = session.scalar(select(model).filter_by(**lookup))
    if row is None:
        row = model(**lookup, **values)
        session.add(row)
        session.flush()
    return row


def load(session: Session, path: Path = DEMO_FILE) -> dict[str, int]:
    """Add whatever of the demo directory is missing; running it twice adds nothing."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    added = {"services": 0}
    places = {}
    for m in doc["municipalities"]:
        places[m["code"]] = _get_or_add(
            session,
            Municipality,
            {"code": m["code"]},
            name=m["name"],
            country=m["country"],
            admin_area=m.get("admin_area"),
        )
    kinds = {}
    for position, c in enumerate(doc["categories"]):
        kinds[c["code"]] = _get_or_add(
            session,
            Category,
            {"code": c["code"]},
            names=c["names"],
            position=position,
            sensitive=bool(c.get("sensitive")),
        )
    orgs = {
        o["name"]: _get_or_add(
            session, Organization, {"name": o["name"]}, description=o.get("description")
        )
        for o in doc["organizations"]
    }
    for s in doc["services"]:
        org = orgs[s["org"]]
        if session.scalar(select(Service).filter_by(organization_id=org.id, name=s["name"])):
            continue
        municipality = places[s["municipality"]]
        location = _get_or_add(
            session,
            Location,
            {"organization_id": org.id, "municipality_id": municipality.id},
            name=f"{org.name}, {municipality.name}",
        )
        service = Service(
            organization_id=org.id,
            category_id=kinds[s["category"]].id,
            name=s["name"],
            status=s.get("status", ServiceStatus.ACTIVE.value),
            alert_text=s.get("alert_text"),
            languages=s.get("languages", ["es"]),
        )
        service.phones = [Phone(number=s["phone"])]
        service.schedules = [
            Schedule(weekday=d, opens_at=o, closes_at=c) for d, o, c in parse_hours(s["hours"])
        ]
        service.locations = [ServiceAtLocation(location_id=location.id)]
        session.add(service)
        added["services"] += 1
    session.flush()
    _load_routing(session, doc)
    return added


def _load_routing(session: Session, doc: dict[str, Any]) -> None:
    from datetime import date as date_type

    from ruta import focal_points
    from ruta.models import DataSharingAgreement, RoutingChain

    for agreement in doc.get("agreements", []):
        org = session.scalar(select(Organization).where(Organization.name == agreement["org"]))
        exists = org is not None and session.scalar(
            select(DataSharingAgreement.id).where(
                DataSharingAgreement.organization_id == org.id,
                DataSharingAgreement.reference == agreement["reference"],
            )
        )
        if not exists:
            expires = agreement["expires_on"]
            focal_points.add_agreement(
                session,
                agreement["org"],
                agreement["reference"],
                expires if isinstance(expires, date_type) else date_type.fromisoformat(expires),
            )
    ids: dict[str, int] = {}
    for fp in doc.get("focal_points", []):
        ids[fp["key"]] = focal_points.add_focal_point(
            session,
            name=fp["name"],
            phone=fp["phone"],
            organization=fp["org"],
            country=fp["country"],
            municipality=fp.get("municipality"),
            languages=fp.get("languages"),
            coordinator=bool(fp.get("coordinator")),
        ).id
    for route in doc.get("routing", []):
        for category in doc.get("help_categories", []):
            place = session.scalar(
                select(Municipality).where(Municipality.code == route["municipality"])
            )
            assert place is not None
            if session.scalar(
                select(RoutingChain.id).where(
                    RoutingChain.municipality_id == place.id,
                    RoutingChain.category_code == category,
                )
            ):
                continue
            focal_points.set_chain(
                session,
                route["municipality"],
                category,
                [[ids[key] for key in position] for position in route["positions"]],
            )


def is_empty(session: Session) -> bool:
    return session.scalar(select(Municipality.id).limit(1)) is None
