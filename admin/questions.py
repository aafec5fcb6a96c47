"""Admin section: people's questions for a human, answered by SMS (DOMAIN.md, journey 6).
Coordinators see their country's, admins all. The number is never shown: the answer goes out
through Ruta. Every view, answer and close is in the audit log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import Select, false, func, select
from sqlalchemy.orm import Session

from admin.audit import audit
from admin.permissions import requires
from ruta import clock, questions, referrals
from ruta.db import db
from ruta.models import Question, QuestionStatus, Role
from workers.jobs import hand_over

bp = Blueprint("admin_questions", __name__, url_prefix="/admin/questions")
NAV = [("questions.view", "admin_questions.index", _l("Questions"))]
PAGE_SIZE = 50
#: Channels an answer can go back on as SMS; others (USSD) answer on the outbound provider.
SMS_CHANNELS = ("twilio", "africastalking")


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
        rows = [(q.id, q.reference, q.created_at, q.country, q.language, q.channel) for q in found]
    return render_template(
        "admin/questions_index.html",
        rows=rows,
        reference=reference,
        status=status,
        statuses=[s.value for s in QuestionStatus],
        total=total,
    )


@bp.get("/<int:question_id>")
@requires("questions.view")
def view(question_id: int) -> ResponseReturnValue:
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
            plain_letters=(160 if segments == 1 else 153 * segments) - len(prefix),
        )
    response = current_app.make_response(page)
    response.headers["Cache-Control"] = "no-store"  # the person's words are on this page
    return response


def _act(question_id: int, action: str, run: Any) -> ResponseReturnValue:
    try:
        with db.transaction() as session:
            question = _question_or_404(session, question_id, lock=True)
            work = run(session, question)
            audit(session, f"question.{action}", "question", question.id)
    except questions.Refused as refused:
        flash(f"Not done: {refused}.")
        return redirect(url_for("admin_questions.view", question_id=question_id))
    if work is not None:
        hand_over(work)
    flash(f"Question {question_id}: {action} done.")
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

    return _act(question_id, "answer", run)


@bp.post("/<int:question_id>/close")
@requires("questions.answer")
def close(question_id: int) -> ResponseReturnValue:
    def run(session: Session, question: Question) -> None:
        questions.close(session, question, actor=current_user.email, now=clock.now())

    return _act(question_id, "close", run)
