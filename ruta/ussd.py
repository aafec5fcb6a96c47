"""USSD sessions: the same flows, one screen at a time, computed inside the request.

Providers differ (Africa's Talking sends every input so far joined by ``*``; JSON aggregators
send the newest input only), so the input path is kept here per (provider, session id) and only
the newest input reaches the engine. A repeated request gets the same screen and advances
nothing. A person who redials within five minutes of a session that was cut off may continue.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError

from ruta import contacts, sql
from ruta.conversation import (
    OUTBOUND_MESSAGE,
    InboundMessage,
    Route,
    Stored,
    load_state,
    lock_and_read,
    step_conversation,
)
from ruta.db import Database
from ruta.directory import DirectoryCache
from ruta.flowstore import FlowCache
from ruta.models import (
    MessagePurpose,
    MessageStatus,
    UssdSession,
    utcnow,
)
from ruta.referrals import Work
from ruta.sql import Call, Prepared, Row, Tx

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


class _Plain(dict[int, str]):
    """Each character's plain form (its compatibility decomposition without combining marks),
    worked out the first time it is met: ``str.translate`` then writes a screen at C speed.
    Decomposition is per character, so this is the whole text's decomposition, marks dropped."""

    def __missing__(self, codepoint: int) -> str:
        decomposed = unicodedata.normalize("NFKD", chr(codepoint))
        plain = self[codepoint] = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
        return plain


_PLAIN = _Plain({ord("¿"): "", ord("¡"): ""})


def transliterate(text: str) -> str:
    """Plain letters for handsets that cannot show accents: ``á`` to ``a``, ``ñ`` to ``n``."""
    return text.translate(_PLAIN)


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
    directory: DirectoryCache | None = None,
) -> tuple[UssdReply, Work]:
    """One screen. Two round trips on PostgreSQL (three for a new number), as an SMS: the
    first locks the contact and reads this session, the person's latest other session and the
    conversation; the second writes them back and commits."""
    cache = directory if directory is not None else DirectoryCache()
    for attempt in range(2):
        try:
            with sql.transaction(database.bound()) as tx:
                return _handle(tx, flows, cache, request, route, now)
        except DBAPIError as exc:
            if not sql.try_again(exc, attempt):
                raise
    raise AssertionError("unreachable")


# --- statements, built once (ruta/sql.py) -----------------------------------------------------

_SESSION_COLUMNS = (
    UssdSession.id,
    UssdSession.last_input,
    UssdSession.last_sequence,
    UssdSession.pending,
    UssdSession.last_end,
)
_THIS = Prepared(
    select(*_SESSION_COLUMNS)
    .where(
        UssdSession.provider == bindparam("provider"),
        UssdSession.session_id == bindparam("session_id"),
    )
    .with_for_update()
)
_PREVIOUS: dict[int, Prepared] = {}
#: The last screen only when a repeated request shows it again (it is decrypted then only).
_LAST_SCREEN = Prepared(select(UssdSession.last_screen).where(UssdSession.id == bindparam("id")))
_NEW = Prepared(
    insert(UssdSession).values(
        provider=bindparam("provider"),
        session_id=bindparam("session_id"),
        contact_id=bindparam("contact_id"),
        last_input=bindparam("last_input"),
        last_sequence=bindparam("last_sequence"),
        last_screen=bindparam("last_screen"),
        last_end=bindparam("last_end"),
        pending=bindparam("pending"),
        ended_at=bindparam("ended_at"),
        ended_normally=bindparam("ended_normally"),
        created_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
)
_SAVED_COLUMNS = ("last_input", "last_sequence", "last_screen", "last_end", "pending")
#: A screen that waits for input leaves ``ended_at`` as it was (a provider's end notice).
_SAVED = Prepared(
    update(UssdSession)
    .where(UssdSession.id == bindparam("id"))
    .values({name: bindparam(name) for name in _SAVED_COLUMNS})
    .values(updated_at=bindparam("now"))
)
_SAVED_END = Prepared(
    update(UssdSession)
    .where(UssdSession.id == bindparam("id"))
    .values({name: bindparam(name) for name in _SAVED_COLUMNS})
    .values(
        ended_at=bindparam("ended_at"),
        ended_normally=bindparam("ended_normally"),
        updated_at=bindparam("now"),
    )
)
_INPUT = Prepared(
    update(UssdSession)
    .where(UssdSession.id == bindparam("id"))
    .values(last_input=bindparam("last_input"), last_sequence=bindparam("last_sequence"))
)


def _previous_statement(count: int) -> Prepared:
    """The person's latest session other than this one: was it cut off within the window?"""
    prepared = _PREVIOUS.get(count)
    if prepared is None:
        prepared = _PREVIOUS[count] = Prepared(
            select(UssdSession.ended_normally, UssdSession.updated_at)
            .where(
                UssdSession.contact_id == contacts.contact_id_of(count),
                ~(
                    (UssdSession.provider == bindparam("provider"))
                    & (UssdSession.session_id == bindparam("session_id"))
                ),
            )
            .order_by(UssdSession.updated_at.desc(), UssdSession.id.desc())
            .limit(1)
        )
    return prepared


@dataclass
class _Session:
    """This USSD session as read with the contact lock (None fields for a new one)."""

    id: int | None
    last_input: str | None = None
    last_sequence: int | None = None
    pending: str | None = None
    last_end: bool = False


def _handle(
    tx: Tx,
    flows: FlowCache,
    directory: DirectoryCache,
    request: UssdRequest,
    route: Route,
    now: datetime,
) -> tuple[UssdReply, Work]:
    where = {"provider": request.provider, "session_id": request.session_id}
    hashes = contacts.hash_values(request.msisdn)
    contact, stored, (this, previous) = lock_and_read(
        tx,
        request.msisdn,
        hashes,
        CHANNEL,
        now,
        _THIS(**where),
        _previous_statement(len(hashes))(**where, **hashes),
    )
    directory.seen(stored.directory_version)
    engine = flows.engine_at(stored.flows_version, tx.session)
    settings = engine.library.settings
    ussd = _Session(*this[0]) if this else _Session(None)
    writes: list[Call] = []

    def run(text: str, mode: str = "step") -> tuple[UssdReply, Work]:
        message = InboundMessage(CHANNEL, request.msisdn, text)
        result, work, saved = step_conversation(
            tx, engine, directory, message, route, contact, stored, now, mode=mode
        )
        writes.extend(saved)
        for event in result.events:
            if event.kind == "sms_requested":
                writes.append(
                    OUTBOUND_MESSAGE(
                        channel=route.outbound_channel,
                        contact_id=contact.id,
                        body=event.data["text"],
                        status=MessageStatus.QUEUED.value,
                        purpose=MessagePurpose.REPLY.value,
                        segments=None,
                        encoding=None,
                        in_reply_to_id=None,
                        about_case_id=None,
                        created_at=utcnow(),
                    )
                )
        end = result.state is None or bool(result.state.get("ended"))
        return UssdReply(result.text, end), work

    if ussd.id is None:
        ussd.last_input, ussd.last_sequence = request.text or "", request.sequence
        if _was_cut_off(previous, stored, now):
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
            (screen,) = tx.run(_LAST_SCREEN(id=ussd.id), commit=True)
            return UssdReply(screen[0][0] or "", ussd.last_end), Work()
        if ussd.pending == "resume":
            ussd.pending = None
            if newest.strip() == CONTINUE:
                reply, work = run("", mode="redisplay")
            elif newest.strip() == RESTART:
                reply, work = run("", mode="fresh")
            else:  # neither: the offer again, the input path kept (pending stays "resume")
                screen, _ = tx.run(
                    _LAST_SCREEN(id=ussd.id),
                    _INPUT(
                        id=ussd.id, last_input=ussd.last_input, last_sequence=ussd.last_sequence
                    ),
                    commit=True,
                )
                return UssdReply(screen[0][0] or "", False), Work()
        else:
            reply, work = run(newest)
    if not reply.text:
        reply = UssdReply(settings.message("error", contact.language or "es"), end=True)
    saved = {
        "last_input": ussd.last_input,
        "last_sequence": ussd.last_sequence,
        "last_screen": reply.text,
        "last_end": reply.end,
        "pending": ussd.pending,
        "ended_at": now if reply.end else None,
        "ended_normally": reply.end,
        "now": now,
    }
    if ussd.id is None:
        writes.insert(0, _NEW(**where, contact_id=contact.id, **saved))
    else:
        writes.insert(0, (_SAVED_END if reply.end else _SAVED)(id=ussd.id, **saved))
    results = tx.run(*writes, commit=True)
    for call, rows in zip(writes, results, strict=True):
        if call[0] is OUTBOUND_MESSAGE:
            work.message_ids.append(rows[0][0])
    return reply, work


def _newest_input(ussd: _Session, request: UssdRequest) -> str | None:
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


def _was_cut_off(previous: list[Row], stored: Stored, now: datetime) -> bool:
    """Did this person's last session drop (no END from us) within the resume window, with a
    conversation still waiting on a question?"""
    if not previous:
        return False
    ended_normally, updated_at = previous[0]
    if ended_normally or updated_at < now - RESUME_WINDOW:
        return False
    return stored.state is not None and not load_state(stored.state).get("ended")


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
