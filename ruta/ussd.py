"""USSD sessions: the same flows, one screen at a time, computed inside the request.

Providers differ (Africa's Talking sends every input so far joined by ``*``; JSON aggregators
send the newest input only), so the input path is kept here per (provider, session id) and only
the newest input reaches the engine. A repeated request gets the same screen and advances
nothing. A person who redials within five minutes of a session that was cut off may continue.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ruta import contacts
from ruta.conversation import InboundMessage, Route, step_conversation
from ruta.db import Database
from ruta.flowstore import FlowCache
from ruta.models import (
    ConversationSession,
    Direction,
    Message,
    MessagePurpose,
    MessageStatus,
    UssdSession,
)
from ruta.referrals import Work

CHANNEL = "ussd"
#: A session cut off less than this long ago may be continued.
RESUME_WINDOW = timedelta(minutes=5)
CONTINUE, RESTART = "1", "2"


@dataclass(frozen=True)
class UssdRequest:
    """A provider's USSD request, normalised. ``text`` is cumulative (Africa's Talking);
    ``latest`` is the newest input only (JSON aggregators), with an optional ``sequence``."""

    provider: str
    session_id: str
    msisdn: str
    service_code: str = ""
    text: str | None = None
    latest: str | None = None
    sequence: int | None = None


@dataclass(frozen=True)
class UssdReply:
    text: str
    end: bool


def transliterate(text: str) -> str:
    """Plain letters for handsets that cannot show accents: ``á`` to ``a``, ``ñ`` to ``n``."""
    decomposed = unicodedata.normalize("NFKD", text.replace("¿", "").replace("¡", ""))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def fit(text: str, max_chars: int) -> str:
    """A safety net under the validator: cut an over-long screen at a line break."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    return cut[: cut.rfind("\n")] if "\n" in cut else cut


def handle(
    database: Database,
    flows: FlowCache,
    request: UssdRequest,
    route: Route,
    *,
    now: datetime,
) -> tuple[UssdReply, Work]:
    with database.transaction() as session:
        return _handle(session, flows, request, route, now)


def _handle(
    session: Session, flows: FlowCache, request: UssdRequest, route: Route, now: datetime
) -> tuple[UssdReply, Work]:
    contact = contacts.lock_contact(session, request.msisdn, seen_at=now)
    ussd = session.scalar(
        select(UssdSession)
        .where(
            UssdSession.provider == request.provider, UssdSession.session_id == request.session_id
        )
        .with_for_update()
    )
    settings = flows.engine(session).library.settings

    def run(text: str, mode: str = "step") -> tuple[UssdReply, Work]:
        message = InboundMessage(CHANNEL, request.msisdn, text)
        result, work = step_conversation(session, flows, message, route, contact, now, mode=mode)
        for event in result.events:
            if event.kind == "sms_requested":
                work.message_ids.append(_queue_sms(session, contact.id, event.data["text"], route))
        end = result.state is None or bool(result.state.get("ended"))
        return UssdReply(result.text, end), work

    if ussd is None:
        ussd = UssdSession(
            provider=request.provider,
            session_id=request.session_id,
            contact_id=contact.id,
            last_input=request.text or "",
            last_sequence=request.sequence,
            created_at=now,
        )
        session.add(ussd)
        session.flush()
        if _was_cut_off(session, contact.id, ussd.id, now):
            ussd.pending = "resume"
            language = contact.language or settings.default_language
            reply = UssdReply(
                "\n".join(
                    [
                        settings.message("resume", language),
                        f"{CONTINUE} {settings.message('resume_continue', language)}",
                        f"{RESTART} {settings.message('resume_restart', language)}",
                    ]
                ),
                end=False,
            )
            work = Work()
        else:
            reply, work = run("", mode="fresh")
    else:
        newest = _newest_input(ussd, request)
        if newest is None:  # the same request again: the same screen, nothing advanced
            return UssdReply(ussd.last_screen or "", ussd.last_end), Work()
        if ussd.pending == "resume":
            ussd.pending = None
            if newest.strip() == CONTINUE:
                reply, work = run("", mode="redisplay")
            elif newest.strip() == RESTART:
                reply, work = run("", mode="fresh")
            else:
                ussd.pending = "resume"
                return UssdReply(ussd.last_screen or "", False), Work()
        else:
            reply, work = run(newest)
    if not reply.text:
        reply = UssdReply(settings.message("error", contact.language or "es"), end=True)
    ussd.last_screen, ussd.last_end, ussd.updated_at = reply.text, reply.end, now
    if reply.end:
        ussd.ended_at, ussd.ended_normally = now, True
    return reply, work


def _newest_input(ussd: UssdSession, request: UssdRequest) -> str | None:
    """The input this request adds, or None when it repeats the last one."""
    if request.text is not None:
        previous = ussd.last_input or ""
        if request.text == previous:
            return None
        ussd.last_input = request.text
        if previous and request.text.startswith(previous + "*"):
            return request.text[len(previous) + 1 :]
        return request.text.rsplit("*", 1)[-1] if previous else request.text
    if request.sequence is not None:
        if ussd.last_sequence is not None and request.sequence <= ussd.last_sequence:
            return None
        ussd.last_sequence = request.sequence
    return request.latest or ""


def _was_cut_off(session: Session, contact_id: int, current_id: int, now: datetime) -> bool:
    """Did this person's last session drop (no END from us) within the resume window, with a
    conversation still waiting on a question?"""
    previous = session.scalar(
        select(UssdSession)
        .where(UssdSession.contact_id == contact_id, UssdSession.id != current_id)
        .order_by(UssdSession.updated_at.desc(), UssdSession.id.desc())
        .limit(1)
    )
    if previous is None or previous.ended_normally or previous.updated_at < now - RESUME_WINDOW:
        return False
    state = session.scalar(
        select(ConversationSession.state).where(
            ConversationSession.channel == CHANNEL, ConversationSession.contact_id == contact_id
        )
    )
    return state is not None and not json.loads(state).get("ended")


def session_ended(
    database: Database, provider: str, session_id: str, *, completed: bool, now: datetime
) -> bool:
    """The provider's end-of-session notice. A session we did not end with END was cut off."""
    with database.transaction() as session:
        ussd = session.scalar(
            select(UssdSession)
            .where(UssdSession.provider == provider, UssdSession.session_id == session_id)
            .with_for_update()
        )
        if ussd is None:
            return False
        ussd.ended_at = ussd.ended_at or now
        ussd.ended_normally = ussd.ended_normally or (completed and ussd.last_end)
        return True


def _queue_sms(session: Session, contact_id: int, text: str, route: Route) -> int:
    message = Message(
        direction=Direction.OUTBOUND.value,
        channel=route.outbound_channel,
        contact_id=contact_id,
        body=text,
        status=MessageStatus.QUEUED.value,
        purpose=MessagePurpose.REPLY.value,
    )
    session.add(message)
    session.flush()
    return message.id
