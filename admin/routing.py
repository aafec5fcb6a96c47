"""Admin section: Focal points, routing chains and data-sharing agreements.

Numbers are shown masked. Coordinators manage the focal points and chains of their own country
(others answer 404) and the agreements of organisations whose focal points are all in it; they see
but may not change (403) agreements of organisations that also work elsewhere; admins all;
viewers read. The page warns about (municipality, kind of help)
pairs without a chain, whose cases would go straight to the coordinator, and about agreements
that have expired or expire within ``EXPIRY_WARNING``. Every change is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from admin.audit import audit
from admin.i18n import word
from admin.permissions import requires
from ruta import clock, contacts, focal_points, routing, taxonomy
from ruta.db import db
from ruta.models import (
    DataSharingAgreement,
    FocalPoint,
    Municipality,
    Organization,
    Role,
    RoutingChain,
)

bp = Blueprint("admin_routing", __name__, url_prefix="/admin/routing")
NAV = [("routing.view", "admin_routing.index", _l("Focal points"))]

#: The kinds of help a person can ask for: the values of the ask_help flow's ``kind`` menu
#: (flows/definitions/ask_help.yaml), the taxonomy's kinds of help (ruta/taxonomy.yaml).
HELP_CATEGORIES = taxonomy.load().help_codes()
#: Agreements expiring this soon (or already expired) are listed as warnings.
EXPIRY_WARNING = routing.EXPIRY_WARNING


def mask(number: str) -> str:
    """``+50600001001`` -> ``+506*****001``: enough to tell numbers apart, not to call."""
    return number[:4] + "*" * max(0, len(number) - 7) + number[-3:]


def _own_country() -> str | None:
    """The only country a coordinator manages; None for everyone else (all countries)."""
    if Role(current_user.role) is Role.COORDINATOR:
        return str(current_user.country or "--")
    return None


def _in_scope(country: str | None) -> bool:
    own = _own_country()
    return own is None or country == own


def _organization_countries(session: Session, organization_id: int) -> set[str]:
    """An organisation's countries: those of its focal points (it has no country of its own,
    and its agreement decides whether each of them receives referrals)."""
    query = select(FocalPoint.country).where(FocalPoint.organization_id == organization_id)
    return set(session.scalars(query.distinct()))


def _agreement_scope(session: Session, organization_id: int) -> str:
    """``"own"``: the user may change the organisation's agreements; ``"shared"``: a coordinator
    sees them but they reach other countries too (an admin changes them); ``"foreign"``: not
    the coordinator's at all (nor an organisation without focal points)."""
    own = _own_country()
    if own is None:
        return "own"
    countries = _organization_countries(session, organization_id)
    if countries == {own}:
        return "own"
    return "shared" if own in countries else "foreign"


def _changeable_agreement(session: Session, found: DataSharingAgreement | None) -> None:
    """404 for an agreement the coordinator does not see, 403 for one they may not change."""
    if found is None:
        abort(404)
    scope = _agreement_scope(session, found.organization_id)
    if scope == "foreign":
        abort(404)
    if scope == "shared":
        abort(403)


# --- reading ---------------------------------------------------------------------------------


@dataclass
class Warnings:
    missing: list[tuple[Municipality, list[str]]]  # municipality, kinds of help without a chain
    expiring: list[tuple[DataSharingAgreement, str, int]]  # agreement, organisation, days left
    #: What reaches nobody, as `ruta routing check` finds it (the page words it per language).
    unrouted: list[tuple[Municipality, list[str]]]
    no_coordinator: list[str]  # countries

    @property
    def gaps(self) -> bool:
        return bool(self.unrouted or self.no_coordinator)


def warnings(session: Session, country: str | None, today: date) -> Warnings:
    places = select(Municipality).order_by(Municipality.country, Municipality.name)
    if country is not None:
        places = places.where(Municipality.country == country)
    chains = set(session.execute(select(RoutingChain.municipality_id, RoutingChain.category_code)))
    missing = []
    for place in session.scalars(places):
        kinds = [k for k in HELP_CATEGORIES if (place.id, k) not in chains]
        if kinds:
            missing.append((place, kinds))
    kinds = routing.published_kinds(session) or list(HELP_CATEGORIES)
    found = routing.gaps(session, kinds, today, country)
    return Warnings(missing, found.expiring, found.unrouted, found.no_coordinator)


def _focal_points(session: Session, country: str | None) -> list[FocalPoint]:
    query = select(FocalPoint).order_by(FocalPoint.country, FocalPoint.name)
    if country is not None:
        query = query.where(FocalPoint.country == country)
    return list(session.scalars(query))


@bp.get("/")
@requires("routing.view")
def index() -> ResponseReturnValue:
    today = clock.now().date()
    country = _own_country()
    with db.transaction() as session:
        fps = _focal_points(session, country)
        chain_query = (
            select(RoutingChain, Municipality)
            .join(Municipality, Municipality.id == RoutingChain.municipality_id)
            .order_by(Municipality.country, Municipality.name, RoutingChain.category_code)
        )
        if country is not None:
            chain_query = chain_query.where(Municipality.country == country)
        chains = [
            (chain, place, _positions(chain)) for chain, place in session.execute(chain_query)
        ]
        agreement_query = (
            select(DataSharingAgreement, Organization.name)
            .join(Organization, Organization.id == DataSharingAgreement.organization_id)
            .order_by(Organization.name, DataSharingAgreement.expires_on.desc())
        )
        if country is not None:
            agreement_query = agreement_query.where(
                DataSharingAgreement.organization_id.in_(
                    select(FocalPoint.organization_id).where(FocalPoint.country == country)
                )
            )
        agreements = list(session.execute(agreement_query))
        editable = {
            a.id for a, _name in agreements if _agreement_scope(session, a.organization_id) == "own"
        }
        found = warnings(session, country, today)
        return render_template(
            "admin/routing_index.html",
            focal_points=[(fp, mask(fp.contact.phone), fp.organization.name) for fp in fps],
            chains=chains,
            agreements=agreements,
            editable_agreements=editable,
            warnings=found,
            today=today,
            soon=today + EXPIRY_WARNING,
            organizations=_organization_names(session),
            help_categories=HELP_CATEGORIES,
        )


def _positions(chain: RoutingChain) -> list[list[FocalPoint]]:
    positions: dict[int, list[FocalPoint]] = {}
    for step in chain.steps:
        positions.setdefault(step.position, []).append(step.focal_point)
    return [positions[p] for p in sorted(positions)]


def _organization_names(session: Session) -> list[str]:
    return list(session.scalars(select(Organization.name).order_by(Organization.name)))


# --- focal points ----------------------------------------------------------------------------


def _focal_point_or_404(session: Session, focal_point_id: int) -> FocalPoint:
    fp = session.get(FocalPoint, focal_point_id)
    if fp is None or not _in_scope(fp.country):
        abort(404)
    return fp


def _read_focal_point_form(session: Session, *, new: bool) -> tuple[dict[str, Any], list[str]]:
    form = request.form
    errors = []
    values: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "organization": form.get("organization", "").strip(),
        "country": (_own_country() or form.get("country", "")).strip().upper(),
        "municipality": form.get("municipality", "").strip() or None,
        "categories": [c for c in form.getlist("categories") if c in HELP_CATEGORIES],
        "languages": [
            lang.strip().lower()
            for lang in form.get("languages", "es").replace(" ", ",").split(",")
            if lang.strip()
        ]
        or ["es"],
        "coordinator": form.get("coordinator") == "1",
        "phone": None,
    }
    if not values["name"]:
        errors.append(_("A name is required."))
    if not values["organization"]:
        errors.append(_("An organisation is required."))
    if len(values["country"]) != 2 or not values["country"].isalpha():
        errors.append(_("The country is a two-letter code (CR, HN...)."))
    if values["municipality"]:
        place = session.scalar(
            select(Municipality).where(Municipality.code == values["municipality"])
        )
        if place is None or place.country != values["country"]:
            errors.append(_("The municipality is not one of the country's."))
    raw_phone = form.get("phone", "").strip()
    if raw_phone:
        try:
            values["phone"] = contacts.normalise_number(raw_phone)
        except contacts.InvalidNumber:
            errors.append(
                _("The number is not a valid phone number (begin with + and the country code).")
            )
    elif new:
        errors.append(_("A number is required."))
    return values, errors


def _number_taken(session: Session, e164: str, other_than: int | None) -> bool:
    contact = contacts.find_contact(session, e164)
    if contact is None:
        return False
    owner = session.scalar(select(FocalPoint.id).where(FocalPoint.contact_id == contact.id))
    return owner is not None and owner != other_than


def _render_focal_point(
    session: Session, fp: FocalPoint | None, values: dict[str, Any], errors: list[str]
) -> str:
    places = select(Municipality).order_by(Municipality.country, Municipality.name)
    if _own_country():
        places = places.where(Municipality.country == _own_country())
    return render_template(
        "admin/routing_focal_point.html",
        fp=fp,
        masked=mask(fp.contact.phone) if fp is not None else None,
        values=values,
        errors=errors,
        municipalities=list(session.scalars(places)),
        organizations=_organization_names(session),
        help_categories=HELP_CATEGORIES,
        own_country=_own_country(),
    )


@bp.route("/focal-points/new", methods=["GET", "POST"])
@requires("routing.edit")
def new_focal_point() -> ResponseReturnValue:
    with db.transaction() as session:
        if request.method == "GET":
            values: dict[str, Any] = {
                "country": _own_country() or "",
                "languages": ["es"],
                "categories": [],
            }
            return _render_focal_point(session, None, values, [])
        values, errors = _read_focal_point_form(session, new=True)
        if not errors and _number_taken(session, values["phone"], None):
            errors.append(_("A focal point already has this number: edit that one."))
        if errors:
            return _render_focal_point(session, None, values, errors), 400
        fp = focal_points.add_focal_point(
            session,
            name=values["name"],
            phone=values["phone"],
            organization=values["organization"],
            country=values["country"],
            municipality=values["municipality"],
            categories=values["categories"],
            languages=values["languages"],
            coordinator=values["coordinator"],
        )
        audit(
            session,
            "focal_point.add",
            "focal_point",
            fp.id,
            name=fp.name,
            country=fp.country,
            organization=values["organization"],
        )
        fp_id = fp.id
    flash(_("Focal point %(name)s added.", name=values["name"]))
    return redirect(url_for("admin_routing.focal_point", focal_point_id=fp_id))


@bp.route("/focal-points/<int:focal_point_id>", methods=["GET", "POST"])
@requires("routing.edit")
def focal_point(focal_point_id: int) -> ResponseReturnValue:
    with db.transaction() as session:
        fp = _focal_point_or_404(session, focal_point_id)
        if request.method == "GET":
            values = {
                "name": fp.name,
                "organization": fp.organization.name,
                "country": fp.country,
                "municipality": session.get(Municipality, fp.municipality_id).code  # type: ignore[union-attr]
                if fp.municipality_id
                else None,
                "categories": fp.categories,
                "languages": fp.languages,
                "coordinator": fp.is_coordinator,
            }
            return _render_focal_point(session, fp, values, [])
        values, errors = _read_focal_point_form(session, new=False)
        if values["phone"] and _number_taken(session, values["phone"], fp.id):
            errors.append(_("Another focal point has this number."))
        if errors:
            return _render_focal_point(session, fp, values, errors), 400
        before = {"name": fp.name, "country": fp.country, "coordinator": fp.is_coordinator}
        if values["phone"]:
            fp.contact_id = contacts.lock_contact(session, values["phone"]).id
        fp.name = values["name"]
        fp.organization_id = focal_points._organization(session, values["organization"]).id
        fp.country = values["country"]
        fp.municipality_id = (
            focal_points._municipality(session, values["municipality"]).id
            if values["municipality"]
            else None
        )
        fp.categories = values["categories"]
        fp.languages = values["languages"]
        fp.is_coordinator = values["coordinator"]
        audit(
            session,
            "focal_point.edit",
            "focal_point",
            fp.id,
            before=before,
            name=fp.name,
            country=fp.country,
            coordinator=fp.is_coordinator,
            number_changed=bool(values["phone"]),
        )
    flash(_("Focal point saved."))
    return redirect(url_for("admin_routing.focal_point", focal_point_id=focal_point_id))


@bp.post("/focal-points/<int:focal_point_id>/active")
@requires("routing.edit")
def set_active(focal_point_id: int) -> ResponseReturnValue:
    active = request.form.get("active") == "1"
    with db.transaction() as session:
        fp = _focal_point_or_404(session, focal_point_id)
        focal_points.set_active(session, fp.id, active)
        action = "focal_point.activate" if active else "focal_point.deactivate"
        audit(session, action, "focal_point", fp.id)
        name = fp.name
    flash(
        _("%(name)s is active again.", name=name)
        if active
        else _("%(name)s is inactive: no more alerts go to it.", name=name)
    )
    return redirect(url_for("admin_routing.index"))


# --- chains ----------------------------------------------------------------------------------


def _chain_or_404(session: Session, chain_id: int) -> tuple[RoutingChain, Municipality]:
    chain = session.get(RoutingChain, chain_id)
    place = session.get(Municipality, chain.municipality_id) if chain is not None else None
    if chain is None or place is None or not _in_scope(place.country):
        abort(404)
    return chain, place


def _read_positions(session: Session, country: str) -> tuple[list[list[int]], list[str]]:
    """``position-0``, ``position-1``... each a list of focal point ids; blanks are skipped."""
    positions: list[list[int]] = []
    seen: set[int] = set()
    errors = []
    indexes = sorted(
        int(key.removeprefix("position-"))
        for key in request.form
        if key.startswith("position-") and key.removeprefix("position-").isdigit()
    )
    for index in indexes:
        ids = [int(v) for v in request.form.getlist(f"position-{index}") if v.isdigit()]
        for fp_id in ids:
            fp = session.get(FocalPoint, fp_id)
            if fp is None or fp.country != country:
                errors.append(_("Focal point %(id)s is not one of the country's.", id=fp_id))
            if fp_id in seen:
                errors.append(_("Focal point %(id)s appears in two positions.", id=fp_id))
            seen.add(fp_id)
        if ids:
            positions.append(ids)
    if not positions:
        errors.append(_("Choose at least one focal point."))
    return positions, errors


def _render_chain(
    session: Session,
    chain: RoutingChain | None,
    place: Municipality | None,
    category: str,
    positions: list[list[int]],
    errors: list[str],
) -> str:
    places = select(Municipality).order_by(Municipality.country, Municipality.name)
    if _own_country():
        places = places.where(Municipality.country == _own_country())
    candidates = _focal_points(session, place.country if place else _own_country())
    return render_template(
        "admin/routing_chain.html",
        chain=chain,
        place=place,
        category=category,
        positions=[*positions, [], []],
        candidates=candidates,
        municipalities=list(session.scalars(places)),
        help_categories=HELP_CATEGORIES,
        errors=errors,
    )


@bp.route("/chains/new", methods=["GET", "POST"])
@requires("routing.edit")
def new_chain() -> ResponseReturnValue:
    source = request.form if request.method == "POST" else request.args
    code, category = source.get("municipality", ""), source.get("category", "")
    with db.transaction() as session:
        place = session.scalar(select(Municipality).where(Municipality.code == code))
        if place is not None and not _in_scope(place.country):
            place = None
        if request.method == "GET" or place is None:
            errors = [] if request.method == "GET" else [_("Choose a municipality.")]
            return _render_chain(session, None, place, category, [], errors), (
                200 if request.method == "GET" else 400
            )
        positions, errors = _read_positions(session, place.country)
        if category not in HELP_CATEGORIES:
            errors.append(_("Choose a kind of help."))
        exists = session.scalar(
            select(RoutingChain.id).where(
                RoutingChain.municipality_id == place.id, RoutingChain.category_code == category
            )
        )
        if exists:
            errors.append(
                _("This municipality already has a chain for this kind of help: edit it.")
            )
        if errors:
            return _render_chain(session, None, place, category, positions, errors), 400
        chain = focal_points.set_chain(session, place.code, category, positions)
        audit(
            session,
            "chain.add",
            "chain",
            chain.id,
            municipality=place.code,
            category=category,
            positions=positions,
        )
        chain_id = chain.id
    flash(_("Chain for %(place)s, %(kind)s saved.", place=place.name, kind=word("kinds", category)))
    return redirect(url_for("admin_routing.chain", chain_id=chain_id))


@bp.route("/chains/<int:chain_id>", methods=["GET", "POST"])
@requires("routing.edit")
def chain(chain_id: int) -> ResponseReturnValue:
    with db.transaction() as session:
        found, place = _chain_or_404(session, chain_id)
        current = [[fp.id for fp in position] for position in _positions(found)]
        if request.method == "GET":
            return _render_chain(session, found, place, found.category_code, current, [])
        positions, errors = _read_positions(session, place.country)
        if errors:
            return _render_chain(session, found, place, found.category_code, positions, errors), 400
        focal_points.set_chain(session, place.code, found.category_code, positions)
        audit(
            session,
            "chain.edit",
            "chain",
            chain_id,
            municipality=place.code,
            category=found.category_code,
            before=current,
            positions=positions,
        )
    flash(_("Chain saved."))
    return redirect(url_for("admin_routing.chain", chain_id=chain_id))


@bp.post("/chains/<int:chain_id>/delete")
@requires("routing.edit")
def delete_chain(chain_id: int) -> ResponseReturnValue:
    with db.transaction() as session:
        found, place = _chain_or_404(session, chain_id)
        before = [[fp.id for fp in position] for position in _positions(found)]
        audit(
            session,
            "chain.delete",
            "chain",
            chain_id,
            municipality=place.code,
            category=found.category_code,
            before=before,
        )
        session.delete(found)
    flash(_("Chain deleted: these cases now go to the country's coordinator."))
    return redirect(url_for("admin_routing.index"))


# --- agreements ------------------------------------------------------------------------------


def _read_agreement_form() -> tuple[str, date | None, list[str]]:
    reference = request.form.get("reference", "").strip()
    errors = [] if reference else [_("A reference is required.")]
    try:
        expires: date | None = date.fromisoformat(request.form.get("expires_on", ""))
    except ValueError:
        expires = None
        errors.append(_("Write the expiry date as YYYY-MM-DD."))
    return reference, expires, errors


@bp.post("/agreements")
@requires("routing.edit")
def add_agreement() -> ResponseReturnValue:
    organization = request.form.get("organization", "").strip()
    reference, expires, errors = _read_agreement_form()
    if not organization:
        errors.append(_("An organisation is required."))
    if errors or expires is None:
        flash(_("Agreement not added: %(problems)s", problems=" ".join(errors)))
        return redirect(url_for("admin_routing.index"))
    with db.transaction() as session:
        if _own_country() is not None:
            # A coordinator's agreement must reach their country only: the organisation exists
            # and all its focal points are theirs (add one first for a new organisation).
            org_id = session.scalar(
                select(Organization.id).where(Organization.name == organization)
            )
            if org_id is None or _agreement_scope(session, org_id) != "own":
                abort(403)
        agreement = focal_points.add_agreement(session, organization, reference, expires)
        audit(
            session,
            "agreement.add",
            "agreement",
            agreement.id,
            organization=organization,
            reference=reference,
            expires_on=expires.isoformat(),
        )
    flash(_("Agreement %(reference)s added.", reference=reference))
    return redirect(url_for("admin_routing.index"))


@bp.route("/agreements/<int:agreement_id>", methods=["GET", "POST"])
@requires("routing.edit")
def agreement(agreement_id: int) -> ResponseReturnValue:
    """Correct an agreement (``action=edit``) or renew it: a new agreement for the same
    organisation (``action=renew``), the old one kept as a record."""
    with db.transaction() as session:
        found = session.get(DataSharingAgreement, agreement_id)
        _changeable_agreement(session, found)
        assert found is not None
        org = session.get(Organization, found.organization_id)
        assert org is not None
        errors: list[str] = []
        if request.method == "POST":
            reference, expires, errors = _read_agreement_form()
            if not errors and expires is not None:
                if request.form.get("action") == "renew":
                    renewed = focal_points.add_agreement(session, org.name, reference, expires)
                    audit(
                        session,
                        "agreement.renew",
                        "agreement",
                        renewed.id,
                        renews=found.id,
                        organization=org.name,
                        reference=reference,
                        expires_on=expires.isoformat(),
                    )
                    flash(_("Agreement renewed as %(reference)s.", reference=reference))
                    target = renewed.id
                else:
                    audit(
                        session,
                        "agreement.edit",
                        "agreement",
                        found.id,
                        before={
                            "reference": found.reference,
                            "expires_on": found.expires_on.isoformat(),
                        },
                        reference=reference,
                        expires_on=expires.isoformat(),
                    )
                    found.reference, found.expires_on = reference, expires
                    flash(_("Agreement saved."))
                    target = found.id
                return redirect(url_for("admin_routing.agreement", agreement_id=target))
        return render_template(
            "admin/routing_agreement.html",
            agreement=found,
            organization=org.name,
            errors=errors,
            today=clock.now().date(),
            soon=clock.now().date() + EXPIRY_WARNING,
        ), (400 if errors else 200)
