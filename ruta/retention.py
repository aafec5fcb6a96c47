"""Retention (DOMAIN.md): the raw text of messages (and of answered questions) is purged after
``RUTA_MESSAGE_RETENTION_DAYS``. Only the text goes; who, when, channel, status and purpose stay,
for the case history and the statistics. Messages not yet handed to a provider keep their
text whatever their age, so nothing waiting to go out is lost."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from ruta.models import Message, MessageStatus, Question, QuestionStatus

__all__ = ["purge_message_text", "purge_question_text"]

#: Statuses of messages still to be sent: their text is needed.
UNSENT = (MessageStatus.QUEUED.value, MessageStatus.SENDING.value)


def purge_message_text(session: Session, now: datetime, days: int) -> int:
    """Blank the text of messages created more than ``days`` days before ``now``; ``days``
    of 0 or less keeps every text. Returns how many messages lost their text."""
    if days <= 0:
        return 0
    purged: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Message)
        .where(
            Message.created_at < now - timedelta(days=days),
            Message.body.is_not(None),
            Message.status.not_in(UNSENT),
        )
        .values(body=None),
        execution_options={"synchronize_session": False},
    )
    return int(purged.rowcount or 0)


def purge_question_text(session: Session, now: datetime, days: int) -> int:
    """Blank the words of questions answered or closed more than ``days`` days before ``now``
    (the question and its answer); open questions keep theirs. Returns how many."""
    if days <= 0:
        return 0
    purged: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(Question)
        .where(
            Question.status != QuestionStatus.OPEN.value,
            Question.answered_at < now - timedelta(days=days),
            Question.text.is_not(None) | Question.answer.is_not(None),
        )
        .values(text=None, answer=None),
        execution_options={"synchronize_session": False},
    )
    return int(purged.rowcount or 0)
