"""Admin section: people's questions for a human, answered by SMS (DOMAIN.md, journey 6).
Coordinators see their country's, admins all. The number is never shown: the answer goes out
through Ruta. Every view, answer and close is in the audit log."""

from __future__ import annotations

from typing import Any

from babel import Locale
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import Select, false, func, select
from sqlalchemy.orm import Session

from admin.audit import audit
from admin.i18n import language
from admin.permissions import requires
from flows.encoding import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    GSM7_PART,
    GSM7_SINGLE,
    UCS2_PART,
    UCS2_SINGLE,
)
from ruta import clock, questions, referrals
from ruta.db import db
from ruta.jobqueue import hand_over
from ruta.models import Question, QuestionStatus, Role

bp = Blueprint("admin_questions", __name__, url_prefix="/admin/questions")
NAV = [("questions.view", "admin_questions.index", _l("Questions"))]
PAGE_SIZE = 50
#: Channels an answer can go back on as SMS; others (USSD) answer on the outbound provider.
SMS_CHANNELS = ("twilio", "africastalking")
#: Letters of a question shown in the list; the whole text is on its own page.
EXCERPT = 140


def place_names() -> dict[str, Any]:
    """Country and language names in the user's language (CLDR, through Babel): pages name
    "Honduras" and "English", never "HN" and "en"."""
    names = Locale.parse(language())

    def country(code: str | None) -> str:
        return str(names.territories.get(code, code)) if code else "-"

    def tongue(code: str | None) -> str:
        return str(names.languages.get(code, code)) if code else "-"

    return {"country_name": country, "language_name": tongue}


def refusal(refused: questions.Refused) -> str:
    """Why an answer or a close was refused, in the user's language."""
    if refused.reason == "too_long":
        return _(
            "the answer takes %(segments)s SMS (%(encoding)s); at most %(limit)s. Shorten it or"
            " write it without accents.",
            **refused.values,
        )
    if refused.reason == "opted_out":
        return _("the person has stopped all messages (STOP or BORRAR): nothing can be sent")
    if refused.reason == "empty":
        return _("the answer is empty")
    return _("this question is no longer open")


def sms_rules() -> dict[str, Any]:
    """What the browser's live counter needs to count as ``flows.encoding.sms_cost`` does.
    The server checks again on sending: the counter only helps while typing."""
    return {
        "gsm7_basic": "".join(sorted(GSM7_BASIC)),
        "gsm7_extension": "".join(sorted(GSM7_EXTENSION)),
        "gsm7_single": GSM7_SINGLE,
        "gsm7_part": GSM7_PART,
        "ucs2_single": UCS2_SINGLE,
        "ucs2_part": UCS2_PART,
    }


def _visible(user: Any) -> Select[Any]:
    query = select(Question)
    if Role(user.role) is Role.COORDINATOR:
        query = query.where(Question.country == user.country if user.country else false())
    elif Role(user.role) is not Role.ADMIN:
        query = query.where(false())
    return query


def _question_or_404(session: Session, question_id: int, *, lock: bool = False) -> Question:
    query = _visible(current_user).where(Question.id == question_id)
    found = session.scalar(query.with_for_update() if lock else query)
    if found is None:
        abort(404)
    return found


@bp.get("/")
@requires("questions.view")
def index() -> ResponseReturnValue:
    status = request.args.get("status", QuestionStatus.OPEN.value)
    if status not in {s.value for s in QuestionStatus}:
        status = QuestionStatus.OPEN.value
    reference = request.args.get("q", "").strip().upper()[:8]
    query = _visible(current_user)
    if reference:  # a reference the person quotes finds their question whatever its status
        query = query.where(Question.reference == reference)
    else:
        query = query.where(Question.status == status)
    with db.transaction() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        found = list(session.scalars(query.order_by(Question.created_at).limit(PAGE_SIZE)))
        rows = [
            {
                "id": q.id,
                "reference": q.reference,
                "text": _excerpt(q.text),
                "created_at": q.created_at,
                "country": q.country,
                "language": q.language,
                "channel": q.channel,
                "status": q.status,
            }
            for q in found
        ]
        # The list shows people's own words: one entry per view, naming the questions shown.
        audit(
            session,
            "question.list",
            "question",
            None,
            questions=[row["id"] for row in rows],
            status=None if reference else status,
            reference=reference or None,
        )
        page = render_template(
            "admin/questions_index.html",
            rows=rows,
            reference=reference,
            status=status,
            statuses=[s.value for s in QuestionStatus],
            total=total,
            **place_names(),
        )
    response = current_app.make_response(page)
    response.headers["Cache-Control"] = "no-store"  # people's words are on this page
    return response


def _excerpt(text: str | None) -> str | None:
    if text is None or len(text) <= EXCERPT:
        return text
    return text[: EXCERPT - 1].rstrip() + "…"


def _page(
    question_id: int,
    *,
    draft: str = "",
    refused: str | None = None,
    close_refused: str | None = None,
    status: int = 200,
) -> Any:
    """The question's page (audited as a view); ``draft`` and ``refused`` bring a refused answer
    back in its box with the reason."""
    with db.transaction() as session:
        question = _question_or_404(session, question_id)
        audit(session, "question.view", "question", question.id)
        segments = int(current_app.config["RUTA_SMS_MAX_SEGMENTS"])
        prefix = questions.answer_text(question, "")
        page = render_template(
            "admin/questions_view.html",
            question=question,
            prefix=prefix,
            max_segments=segments,
            # GSM-7 letters left after the prefix (160 alone, 153 a part when concatenated)
            plain_letters=(GSM7_SINGLE if segments == 1 else GSM7_PART * segments) - len(prefix),
            rules=sms_rules(),
            draft=draft,
            refused=refused,
            close_refused=close_refused,
            **place_names(),
        )
    response = current_app.make_response((page, status))
    response.headers["Cache-Control"] = "no-store"  # the person's words are on this page
    return response


@bp.get("/<int:question_id>")
@requires("questions.view")
def view(question_id: int) -> ResponseReturnValue:
    return _page(question_id)


def _act(question_id: int, action: str, run: Any, draft: str = "") -> ResponseReturnValue:
    try:
        with db.transaction() as session:
            question = _question_or_404(session, question_id, lock=True)
            reference = question.reference
            work = run(session, question)
            audit(session, f"question.{action}", "question", question.id)
    except questions.Refused as refused:
        # Back to the page with the answer still in its box: nothing typed is lost.
        code = 409 if refused.reason in ("closed", "opted_out") else 400
        if action == "close":
            return _page(question_id, close_refused=refusal(refused), status=code)
        return _page(question_id, draft=draft, refused=refusal(refused), status=code)
    if work is not None:
        hand_over(work)
    if action == "answer":
        flash(_("Question %(reference)s: the answer is on its way by SMS.", reference=reference))
    else:
        flash(_("Question %(reference)s closed without an answer.", reference=reference))
    return redirect(url_for("admin_questions.index"))


@bp.post("/<int:question_id>/answer")
@requires("questions.answer")
def answer(question_id: int) -> ResponseReturnValue:
    text = request.form.get("answer", "")

    def run(session: Session, question: Question) -> referrals.Work:
        channel = question.channel
        if channel not in SMS_CHANNELS:
            channel = referrals.outbound_channel(current_app.config)
        return questions.answer(
            session,
            question,
            text,
            actor=current_user.email,
            now=clock.now(),
            channel=channel,
            max_segments=int(current_app.config["RUTA_SMS_MAX_SEGMENTS"]),
        )

    return _act(question_id, "answer", run, draft=text)


@bp.post("/<int:question_id>/close")
@requires("questions.answer")
def close(question_id: int) -> ResponseReturnValue:
    if request.form.get("confirm") != "1":
        # Closing sends nothing and cannot be undone: the box must be ticked on purpose.
        return _page(
            question_id,
            close_refused=_("tick the box to confirm that the question closes without an answer"),
            status=400,
        )

    def run(session: Session, question: Question) -> None:
        questions.close(session, question, actor=current_user.email, now=clock.now())

    return _act(question_id, "close", run)
