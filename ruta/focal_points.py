"""Focal points, routing chains and data-sharing agreements: the operations behind
``ruta focal-points``, ``ruta routing`` and ``ruta agreements`` (and the demo data)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from ruta import contacts
from ruta.models import (
    DataSharingAgreement,
    FocalPoint,
    Municipality,
    Organization,
    RoutingChain,
    RoutingStep,
)


class NotFound(LookupError):
    """A named municipality, organisation or focal point does not exist."""


def _organization(session: Session, name: str) -> Organization:
    org = session.scalar(select(Organization).where(Organization.name == name))
    if org is None:
        org = Organization(name=name)
        session.add(org)
        session.flush()
    return org


def _municipality(session: Session, code: str) -> Municipality:
    found = session.scalar(select(Municipality).where(Municipality.code == code))
    if found is None:
        raise NotFound(f"no municipality with code {code!r}")
    return found


def add_focal_point(
    session: Session,
    *,
    name: str,
    phone: str,
    organization: str,
    country: str,
    municipality: str | None = None,
    categories: list[str] | None = None,
    languages: list[str] | None = None,
    coordinator: bool = False,
) -> FocalPoint:
    """Register (or update) the focal point with this number."""
    contact = contacts.lock_contact(session, contacts.normalise_number(phone))
    organization_id = _organization(session, organization).id
    municipality_id = _municipality(session, municipality).id if municipality else None
    fp = session.scalar(select(FocalPoint).where(FocalPoint.contact_id == contact.id))
    if fp is None:
        fp = FocalPoint(
            contact_id=contact.id,
            name=name,
            organization_id=organization_id,
            country=country.upper(),
        )
        session.add(fp)
    fp.name = name
    fp.organization_id = organization_id
    fp.country = country.upper()
    fp.municipality_id = municipality_id
    fp.categories = list(categories or [])
    fp.languages = list(languages or ["es"])
    fp.is_coordinator = coordinator
    fp.active = True
    contact.language = contact.language or fp.languages[0]
    session.flush()
    return fp


def set_active(session: Session, focal_point_id: int, active: bool) -> FocalPoint:
    fp = session.get(FocalPoint, focal_point_id)
    if fp is None:
        raise NotFound(f"no focal point {focal_point_id}")
    fp.active = active
    return fp


def set_chain(
    session: Session, municipality: str, category: str, positions: list[list[int]]
) -> RoutingChain:
    """Replace the chain for (municipality, category): position 0 primary, then backups."""
    place = _municipality(session, municipality)
    chain = session.scalar(
        select(RoutingChain).where(
            RoutingChain.municipality_id == place.id, RoutingChain.category_code == category
        )
    )
    if chain is None:
        chain = RoutingChain(municipality_id=place.id, category_code=category)
        session.add(chain)
    chain.steps.clear()
    session.flush()
    for position, ids in enumerate(positions):
        for fp_id in ids:
            if session.get(FocalPoint, fp_id) is None:
                raise NotFound(f"no focal point {fp_id}")
            chain.steps.append(RoutingStep(position=position, focal_point_id=fp_id))
    session.flush()
    return chain


def add_agreement(
    session: Session, organization: str, reference: str, expires_on: date
) -> DataSharingAgreement:
    agreement = DataSharingAgreement(
        organization_id=_organization(session, organization).id,
        reference=reference,
        expires_on=expires_on,
    )
    session.add(agreement)
    session.flush()
    return agreement
