"""Admin section: broadcasts. Choose the audience, write the text per language, see each SMS's
segments, encoding and a cost estimate, then send now or schedule; over the approval threshold a
second person approves. Live progress from the recipient ledger; cancel stops the rest.
Coordinators see and act on the broadcasts to their country's municipalities only (others answer
404); a broadcast to every country (no municipality) is the admins'."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from babel import Locale
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import Select, func, select

from admin.audit import audit
from admin.i18n import language, zone
from admin.permissions import requires
from admin.questions import place_names, sms_rules
from flows.encoding import sms_cost, to_gsm7
from ruta import broadcasts, clock, referrals, taxonomy
from ruta import policy as policies
from ruta.db import db
from ruta.directory import DatabaseServices
from ruta.jobqueue import LOW, enqueue, enqueue_at, hand_over
from ruta.models import Broadcast, BroadcastStatus, Municipality, Role, User
from workers.broadcast_jobs import start_broadcast

bp = Blueprint("admin_broadcasts", __name__, url_prefix="/admin/broadcasts")
NAV = [("broadcasts.view", "admin_broadcasts.index", _l("Broadcasts"))]
LANGUAGES = ("es", "en")
MAX_TEXT = 480  # three SMS segments of GSM-7
GENERAL = "general"


def _actor() -> str:
    return str(current_user.email)


def _own_country() -> str | None:
    """A coordinator's country; None for roles that see every broadcast."""
    if Role(current_user.role) is Role.COORDINATOR:
        return str(current_user.country or "--")
    return None


def _scoped(query: Select[Any]) -> Select[Any]:
    """Broadcasts the user may see: a coordinator's are those to a municipality of their
    country; one with no municipality reaches every country and is the admins' alone."""
    country = _own_country()
    if country is None:
        return query
    return query.join(Municipality, Municipality.id == Broadcast.municipality_id).where(
        Municipality.country == country
    )


def _audience_size(session: Any, broadcast: Broadcast) -> int:
    query = broadcasts.recipients_query(
        session,
        broadcast,
        policies.load(current_app.config.get("RUTA_POLICY_FILE")),
        bool(current_app.config.get("RUTA_PAUSE_SENSITIVE_CASES", True)),
    )
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def _cost(written: str, language: str, audience: int, price: float) -> dict[str, Any]:
    text = broadcasts.with_stop_line(written, language)  # what is really sent
    cost = sms_cost(text)
    return {
        "text": text,
        "chars": len(text),
        "encoding": cost.encoding,
        "segments": cost.segments,
        "total_segments": cost.segments * audience,
        "cost": round(cost.segments * price * audience, 2),
    }


def preview(texts: dict[str, str], audience: int) -> list[dict[str, Any]]:
    """Each language's text as sent (with its stop line) with its length, encoding, segments and
    the cost if everyone in the audience got that language (an upper bound when there are
    several); ``plain``: the same for the text without accents (``to_gsm7``) when that
    differs, so the preview shows what dropping them saves."""
    price = float(current_app.config.get("RUTA_SMS_PRICE_PER_SEGMENT", 0.0))
    rows = []
    for code, written in texts.items():
        row = {"language": code, **_cost(written, code, audience, price)}
        plain = to_gsm7(written)
        row["plain"] = _cost(plain, code, audience, price) if plain != written else None
        rows.append(row)
    return rows


def topics(session: Any) -> list[tuple[str, str]]:
    """(code, name) of the topics, named as the alerts menu names them to people by SMS (the
    same function draws that menu): "Todo" for ``general``, then the listed categories."""
    menu = DatabaseServices(session, channel="admin", contact_id=None).alert_topics(language())
    return [(choice.value, choice.label) for choice in menu]


def topic_name(session: Any, code: str | None) -> str:
    code = code or GENERAL
    for value, label in topics(session):
        if value == code:
            return label
    return taxonomy.word("kinds", code, language())  # a category no longer in the menu


def language_names() -> dict[str, str]:
    names = Locale.parse(language()).languages
    return {code: str(names.get(code, code)) for code in LANGUAGES}


def _form_choices(session: Any) -> dict[str, Any]:
    places = select(Municipality).order_by(Municipality.country, Municipality.name)
    if _own_country() is not None:
        places = places.where(Municipality.country == _own_country())
    return {
        "municipalities": list(session.scalars(places)),
        "topics": topics(session),
        "languages": language_names(),
        "own_zone": zone().key,
        "rules": sms_rules(),
        # What the server adds after each text (broadcasts.with_stop_line), for the counter.
        "stop_suffix": {code: broadcasts.with_stop_line("", code) for code in LANGUAGES},
        **place_names(),
    }


@bp.get("/")
@requires("broadcasts.view")
def index() -> ResponseReturnValue:
    status = request.args.get("status", "")
    with db.transaction() as session:
        query = _scoped(select(Broadcast))
        if status in {s.value for s in BroadcastStatus}:  # the dashboard's "wait for approval"
            query = query.where(Broadcast.status == status)
        query = query.order_by(Broadcast.id.desc()).limit(100)
        rows = list(session.scalars(query))
        progress = {b.id: broadcasts.progress(session, b.id) for b in rows}
        return render_template("admin/broadcasts_index.html", broadcasts=rows, progress=progress)


def _parse(form: Any, topic_codes: set[str]) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {"title": form.get("title", "").strip()[:200]}
    errors: dict[str, str] = {}
    if not values["title"]:
        errors["title"] = _("A title is required.")
    values["municipality"] = form.get("municipality") or None
    values["topic"] = form.get("topic") or GENERAL
    values["language"] = form.get("language") or None
    texts = {lang: form.get(f"text_{lang}", "").strip() for lang in LANGUAGES}
    values["texts"] = {lang: text for lang, text in texts.items() if text}
    if not values["texts"]:
        errors["texts"] = _("Write the text in at least one language.")
    for lang, text in values["texts"].items():
        if len(text) > MAX_TEXT:
            errors[f"text_{lang}"] = _("At most %(max)s characters.", max=MAX_TEXT)
    if values["language"] and values["language"] not in LANGUAGES:
        errors["language"] = _("Choose a language from the list.")
    elif values["language"] and values["language"] not in values["texts"]:
        errors["texts"] = _(
            "The audience reads %(language)s: write that text.",
            language=language_names()[values["language"]],
        )
    if values["topic"] not in topic_codes:
        errors["topic"] = _("Choose a topic from the list.")
    values["urgent"] = form.get("urgent") == "1"
    when = form.get("scheduled_at", "").strip()
    values["scheduled_at"] = None
    values["scheduled_text"] = when
    if when:
        try:
            typed = datetime.fromisoformat(when)
        except ValueError:
            errors["scheduled_at"] = _(
                "A date and time like 2026-12-03T09:00 (%(zone)s).", zone=zone().key
            )
        else:
            # The sender's own clock (their account's zone), unless they typed an offset.
            local_time = typed if typed.tzinfo else typed.replace(tzinfo=zone())
            values["scheduled_at"] = local_time.astimezone(UTC)
    return values, errors


@bp.route("/new", methods=["GET", "POST"])
@requires("broadcasts.send")
def new() -> ResponseReturnValue:
    with db.transaction() as session:
        choices = _form_choices(session)
        if request.method == "GET":
            return render_template("admin/broadcasts_new.html", values={}, errors={}, **choices)
        values, errors = _parse(request.form, {code for code, _name in choices["topics"]})
        municipality = None
        if values["municipality"]:
            municipality = session.scalar(
                select(Municipality).where(Municipality.code == values["municipality"])
            )
            if municipality is None:
                errors["municipality"] = _("Choose a municipality from the list.")
        own = _own_country()
        if own is not None and (municipality is None or municipality.country != own):
            abort(403)  # coordinators write to their own country's municipalities only
        if errors:
            return (
                render_template(
                    "admin/broadcasts_new.html", values=values, errors=errors, **choices
                ),
                400,
            )
        broadcast = Broadcast(
            title=values["title"],
            municipality_id=municipality.id if municipality else None,
            topic=None if values["topic"] == GENERAL else values["topic"],
            language=values["language"],
            texts=values["texts"],
            urgent=values["urgent"],
            scheduled_at=values["scheduled_at"],
            created_by=_actor(),
            status=BroadcastStatus.DRAFT.value,
        )
        session.add(broadcast)
        session.flush()
        audit(session, "broadcast.create", "broadcast", broadcast.id, title=broadcast.title)
        broadcast_id = broadcast.id
    return redirect(url_for("admin_broadcasts.view", broadcast_id=broadcast_id))


def _get(session: Any, broadcast_id: int, *, lock: bool = False) -> Broadcast:
    broadcast = session.get(Broadcast, broadcast_id, with_for_update=lock)
    if broadcast is None or (
        _own_country() is not None
        and session.scalar(_scoped(select(Broadcast.id)).where(Broadcast.id == broadcast_id))
        is None
    ):
        abort(404)  # out of scope: not confirmed to exist, as with cases
    return broadcast


@bp.get("/<int:broadcast_id>")
@requires("broadcasts.view")
def view(broadcast_id: int) -> ResponseReturnValue:
    with db.transaction() as session:
        broadcast = _get(session, broadcast_id)
        audience = _audience_size(session, broadcast)
        municipality = (
            session.get(Municipality, broadcast.municipality_id)
            if broadcast.municipality_id
            else None
        )
        phone = _own_phone(session)
        context = {
            "broadcast": broadcast,
            "municipality": municipality,
            "topic": topic_name(session, broadcast.topic),
            "language_names": language_names(),
            "audience": audience,
            "preview": preview(broadcast.texts, audience),
            "samples": broadcasts.sample_sends(session, broadcast.id),
            "max_samples": broadcasts.MAX_SAMPLES,
            "own_phone": _masked(phone) if phone else None,
            "own_language": language() if language() in broadcast.texts else None,
            "progress": broadcasts.progress(session, broadcast.id),
            "threshold": int(current_app.config.get("RUTA_BROADCAST_APPROVAL_OVER", 0)),
            "currency": current_app.config.get("RUTA_SMS_PRICE_CURRENCY", "USD"),
            "can_approve": broadcast.status == BroadcastStatus.AWAITING_APPROVAL.value
            and broadcast.created_by != _actor(),
        }
        return render_template("admin/broadcasts_view.html", **context)


def _own_phone(session: Any) -> str | None:
    """The signed-in user's own phone (set on "My account"), for test sends."""
    user = session.get(User, int(current_user.id))
    return user.phone if user is not None and user.phone else None


def _masked(phone: str) -> str:
    """Enough of the user's own number to recognise it on a page others may glance at."""
    return "•" * max(0, len(phone) - 4) + phone[-4:]


def _back(broadcast_id: int, message: str) -> ResponseReturnValue:
    """Say what happened and show the broadcast's page again."""
    flash(message)
    return redirect(url_for("admin_broadcasts.view", broadcast_id=broadcast_id))


def _release(broadcast: Broadcast) -> None:
    """Hand a scheduled broadcast to the workers (after commit): now, or at its time."""
    redis = current_app.extensions["ruta.redis"]
    prefix = current_app.config["RUTA_QUEUE_PREFIX"]
    now = clock.now()
    if broadcast.scheduled_at is not None and broadcast.scheduled_at > now:
        enqueue_at(
            redis, prefix, broadcast.scheduled_at, start_broadcast, broadcast.id, priority=LOW
        )
    else:
        enqueue(redis, prefix, start_broadcast, broadcast.id, priority=LOW)


@bp.post("/<int:broadcast_id>/send")
@requires("broadcasts.send")
def send(broadcast_id: int) -> ResponseReturnValue:
    with db.transaction() as session:
        broadcast = _get(session, broadcast_id, lock=True)
        if broadcast.status != BroadcastStatus.DRAFT.value:
            return _back(broadcast_id, _("Only a draft can be sent."))
        audience = _audience_size(session, broadcast)
        threshold = int(current_app.config.get("RUTA_BROADCAST_APPROVAL_OVER", 0))
        if threshold and audience > threshold:
            broadcast.status = BroadcastStatus.AWAITING_APPROVAL.value
            audit(session, "broadcast.submit", "broadcast", broadcast.id, audience=audience)
            return _back(
                broadcast_id,
                _(
                    "%(audience)s recipients: over %(threshold)s, a second person must approve.",
                    audience=audience,
                    threshold=threshold,
                ),
            )
        broadcast.status = BroadcastStatus.SCHEDULED.value
        audit(session, "broadcast.send", "broadcast", broadcast.id, audience=audience)
    _release(broadcast)
    return _back(broadcast_id, _("The broadcast is handed to the workers."))


@bp.post("/<int:broadcast_id>/approve")
@requires("broadcasts.send")
def approve(broadcast_id: int) -> ResponseReturnValue:
    with db.transaction() as session:
        broadcast = _get(session, broadcast_id, lock=True)
        if broadcast.status != BroadcastStatus.AWAITING_APPROVAL.value:
            return _back(broadcast_id, _("This broadcast is not waiting for approval."))
        if broadcast.created_by == _actor():
            abort(403)  # the second pair of eyes must be someone else's
        broadcast.status = BroadcastStatus.SCHEDULED.value
        broadcast.approved_by = _actor()
        audit(session, "broadcast.approve", "broadcast", broadcast.id)
    _release(broadcast)
    return _back(broadcast_id, _("Approved and handed to the workers."))


@bp.post("/<int:broadcast_id>/cancel")
@requires("broadcasts.send")
def cancel(broadcast_id: int) -> ResponseReturnValue:
    with db.transaction() as session:
        broadcast = _get(session, broadcast_id, lock=True)
        if broadcast.status in (BroadcastStatus.DONE.value, BroadcastStatus.CANCELLED.value):
            return _back(broadcast_id, _("This broadcast is already over."))
        broadcasts.cancel(session, broadcast_id, clock.now())
        audit(session, "broadcast.cancel", "broadcast", broadcast_id)
    return _back(broadcast_id, _("Cancelled: nobody else will receive it."))


@bp.get("/<int:broadcast_id>/progress")
@requires("broadcasts.view")
def progress(broadcast_id: int) -> ResponseReturnValue:
    with db.transaction() as session:
        broadcast = _get(session, broadcast_id)
        return {"status": broadcast.status, "counts": broadcasts.progress(session, broadcast_id)}


@bp.post("/<int:broadcast_id>/plain")
@requires("broadcasts.send")
def plain(broadcast_id: int) -> ResponseReturnValue:
    """The one-click version without accents: every text becomes its ``to_gsm7`` form."""
    with db.transaction() as session:
        broadcast = _get(session, broadcast_id, lock=True)
        if broadcast.status != BroadcastStatus.DRAFT.value:
            # What a second person approves (or what is going out) must not change under them.
            return _back(broadcast_id, _("Only a draft's text can change."))
        before = dict(broadcast.texts or {})
        after = {code: to_gsm7(text) for code, text in before.items()}
        if after == before:
            return _back(broadcast_id, _("The text has no accents to drop."))
        broadcast.texts = after
        audit(
            session,
            "broadcast.plain",
            "broadcast",
            broadcast.id,
            segments_before={
                c: sms_cost(broadcasts.with_stop_line(t, c)).segments for c, t in before.items()
            },
            segments_after={
                c: sms_cost(broadcasts.with_stop_line(t, c)).segments for c, t in after.items()
            },
        )
    return _back(broadcast_id, _("The text is now without accents."))


@bp.post("/<int:broadcast_id>/test")
@requires("broadcasts.send")
def test_send(broadcast_id: int) -> ResponseReturnValue:
    """Send the broadcast to the sender's own phone only, through the workers and the provider
    as any message; recorded (audited, a "broadcast_test" message) and never counted in the
    broadcast's figures or audience."""
    with db.transaction() as session:
        broadcast = _get(session, broadcast_id, lock=True)
        if broadcast.status in (BroadcastStatus.DONE.value, BroadcastStatus.CANCELLED.value):
            return _back(broadcast_id, _("This broadcast is already over."))
        phone = _own_phone(session)
        if phone is None:
            # The page says so beside the button, with a link to "My account".
            return _back(
                broadcast_id, _("Add your phone on My account first: test sends go there.")
            )
        chosen = request.form.get("language") or language()
        if chosen not in (broadcast.texts or {}):
            chosen = broadcasts.default_language(broadcast)
        try:
            work = broadcasts.send_sample(
                session,
                broadcast,
                phone,
                chosen,
                channel=broadcast.channel or referrals.outbound_channel(current_app.config),
                now=clock.now(),
            )
        except broadcasts.SampleRefused as refused:
            if refused.reason == "over":
                message = _(
                    "This broadcast had its %(max)s test sends already.",
                    max=broadcasts.MAX_SAMPLES,
                )
            else:
                message = _("There is no text in that language.")
            return _back(broadcast_id, message)
        audit(
            session,
            "broadcast.test",
            "broadcast",
            broadcast.id,
            message_id=work.message_ids[0],
            language=chosen,
        )
    hand_over(work)
    return _back(
        broadcast_id,
        _(
            "Test sent to your phone %(phone)s only: it is not counted in the figures.",
            phone=_masked(phone),
        ),
    )
