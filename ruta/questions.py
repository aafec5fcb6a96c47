"""Questions for a human (DOMAIN.md, journey 6): a person leaves one from the flows, a coordinator
answers it by SMS from the admin. The answer goes out like any message: queued, sent by a worker,
and dropped at send time if the person has opted out since."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from flows.encoding import sms_cost
from ruta.cases import REFERENCE_ALPHABET
from ruta.models import (
    Contact,
    Direction,
    Message,
    MessagePurpose,
    MessageStatus,
    Question,
    QuestionStatus,
)
from ruta.referrals import Work

__all__ = ["Refused", "answer", "answer_text", "clean", "close", "new_reference"]

#: What the answer starts with, per language (the question's language; Spanish otherwise): the
#: person knows it is from Ruta and which question it answers, on a phone others may read.
ANSWER_PREFIX = {
    "es": "Ruta: respuesta a su pregunta {reference}: ",
    "en": "Ruta: answer to your question {reference}: ",
}


def new_reference(session: Session) -> str:
    """A reference no question has yet: "Q" and four keypad-safe letters (as cases' references,
    which never need to be told apart from these: a focal point only ever sees a case's)."""
    while True:
        reference = "Q" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(4))
        if session.scalar(select(Question.id).where(Question.reference == reference)) is None:
            return reference


def answer_text(question: Question, text: str) -> str:
    """The SMS the person receives: the prefix naming the question, then the answer."""
    prefix = ANSWER_PREFIX.get(question.language, ANSWER_PREFIX["es"])
    return prefix.format(reference=question.reference) + clean(text)


class Refused(Exception):
    """The answer cannot be sent. ``reason`` is a code the admin words in its user's language
    (``closed``, ``empty``, ``too_long``, ``opted_out``), ``values`` the figures it names; the
    message is the English wording, for logs."""

    def __init__(self, reason: str, message: str, **values: object) -> None:
        super().__init__(message)
        self.reason = reason
        self.values = values


def clean(text: str) -> str:
    """The answer as it is sent: trimmed, and with a browser's CRLF line breaks as one LF (a
    textarea posts CRLF, which would cost an SMS character more per line than the counter
    the coordinator saw while typing)."""
    return text.replace("\r\n", "\n").strip()


def answer(
    session: Session,
    question: Question,
    text: str,
    *,
    actor: str,
    now: datetime,
    channel: str,
    max_segments: int,
) -> Work:
    """Queue ``text`` to the person who asked; the question becomes answered."""
    text = clean(text)
    if question.status != QuestionStatus.OPEN.value:
        raise Refused("closed", "this question is no longer open")
    if not text:
        raise Refused("empty", "the answer is empty")
    body = answer_text(question, text)
    cost = sms_cost(body)  # what is really sent, prefix included
    if cost.segments > max_segments:
        raise Refused(
            "too_long",
            f"the answer takes {cost.segments} SMS ({cost.encoding}); at most {max_segments}",
            segments=cost.segments,
            encoding=cost.encoding,
            limit=max_segments,
        )
    person = session.get(Contact, question.contact_id)
    if person is None or person.opted_out:
        raise Refused("opted_out", "the person has stopped all messages (STOP or BORRAR)")
    message = Message(
        direction=Direction.OUTBOUND.value,
        channel=channel,
        contact_id=person.id,
        body=body,
        status=MessageStatus.QUEUED.value,
        purpose=MessagePurpose.ANSWER.value,
        segments=cost.segments,
        encoding=cost.encoding,
        created_at=now,
    )
    session.add(message)
    session.flush()
    question.status = QuestionStatus.ANSWERED.value
    question.answer = text
    question.answered_by = actor
    question.answered_at = now
    question.answer_message_id = message.id
    return Work(message_ids=[message.id])


def close(session: Session, question: Question, *, actor: str, now: datetime) -> None:
    """Close without an answer (nothing to answer)."""
    if question.status != QuestionStatus.OPEN.value:
        raise Refused("closed", "this question is no longer open")
    question.status = QuestionStatus.CLOSED.value
    question.answered_by = actor
    question.answered_at = now
