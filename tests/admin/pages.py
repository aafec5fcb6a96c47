"""The crawl: every admin page an admin can open, as a URL with sample ids.

The admin's GET rules are walked from ``app.url_map``, so a page added later is crawled too;
ids come from the demo data (Upala's focal point, its chain, a Costa Rican agreement, the main
flow) and from a sample case, question and broadcast made here. Used by the language test
(tests/admin/test_page_language.py) and the axe-core test (tests/browser/test_every_page.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask
from sqlalchemy import select

from ruta.db import db

#: GET endpoints that do not answer an HTML page (files, JSON for scripts).
NOT_PAGES = frozenset(
    {
        "static_admin",
        "admin_directory.export",
        "admin_broadcasts.progress",
        "admin_figures.download",
    }
)


@dataclass(frozen=True)
class Page:
    endpoint: str
    url: str


def sample_ids(case: dict[str, Any]) -> dict[str, str]:
    """Values for every URL argument of an admin rule. ``case`` is the ``sample_case`` fixture;
    a question and a broadcast (Spanish data, like the demo directory) are added here."""
    from ruta import contacts, questions
    from ruta.models import (
        Broadcast,
        DataSharingAgreement,
        FlowVersion,
        FocalPoint,
        Location,
        Municipality,
        Organization,
        Question,
        RoutingChain,
        Service,
    )

    with db.transaction() as session:
        upala = session.scalar(select(Municipality).where(Municipality.code == "cr-upala"))
        assert upala is not None, "the demo directory is not loaded"
        focal_point = session.scalar(
            select(FocalPoint.id).where(FocalPoint.name.like("Punto focal Upala%"))
        )
        chain = session.scalar(
            select(RoutingChain.id).where(RoutingChain.municipality_id == upala.id).limit(1)
        )
        agreement = session.scalar(
            select(DataSharingAgreement.id).where(
                DataSharingAgreement.reference == "DEMO-ACUERDO-2"
            )
        )
        broadcast = Broadcast(
            title="Jornada de documentación en Upala",
            municipality_id=upala.id,
            texts={"es": "La unidad móvil de documentación visita Upala el jueves."},
            created_by="tests",
        )
        person = contacts.lock_contact(session, "+50688009999")
        question = Question(
            reference=questions.new_reference(session),
            contact_id=person.id,
            channel="twilio",
            language="es",
            country="CR",
            text="¿Dónde puedo pedir refugio en Upala?",
        )
        session.add_all([broadcast, question])
        session.flush()
        version = session.scalar(
            select(FlowVersion.version).where(FlowVersion.flow_key == "main").limit(1)
        )
        return {
            "reference": str(case["reference"]),
            "case_id": str(case["id"]),
            "broadcast_id": str(broadcast.id),
            "question_id": str(question.id),
            "key": "main",
            "flow_key": "main",
            "version": str(version or 1),
            "other": str(version or 1),
            "service_id": str(session.scalar(select(Service.id).order_by(Service.id).limit(1))),
            "organization_id": str(
                session.scalar(select(Organization.id).order_by(Organization.id).limit(1))
            ),
            "location_id": str(session.scalar(select(Location.id).order_by(Location.id).limit(1))),
            "municipality_id": str(upala.id),
            "focal_point_id": str(focal_point),
            "chain_id": str(chain),
            "agreement_id": str(agreement),
        }


def admin_pages(app: Flask, ids: dict[str, str], *, login: bool = True) -> list[Page]:
    """Every HTML page of the admin reachable with GET (the login page included when
    ``login``), in URL order."""
    pages = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith("/admin") or "GET" not in (rule.methods or ()):
            continue
        if rule.endpoint in NOT_PAGES or (rule.endpoint == "admin_auth.login" and not login):
            continue
        missing = [a for a in rule.arguments if a not in ids]
        assert not missing, f"add a sample value for {missing} ({rule.rule}) to sample_ids"
        url = rule.build({a: ids[a] for a in rule.arguments}, append_unknown=False)[1]
        pages.append(Page(rule.endpoint, url))
    return pages
