"""Contacts: one per E.164 number, found by keyed hash and locked while a message is handled."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import phonenumbers
from sqlalchemy import ColumnElement, ScalarSelect, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ruta import crypto
from ruta.models import Contact, utcnow
from ruta.sql import Call, Prepared, Row


class InvalidNumber(ValueError):
    """Not a phone number we can reply to."""


def normalise_number(raw: str, region: str | None = None) -> str:
    """E.164 form of ``raw``; ``region`` reads numbers written without a country code."""
    return _normalised(raw, region)


# A person writes several messages within minutes and every one is parsed (3-4 % of a webhook's
# CPU): the answers for recent numbers are remembered. The process holds these numbers in clear
# while it handles their messages anyway; nothing here is written anywhere. Not remembered: a
# string that is not a number (an exception is never cached).
@functools.lru_cache(maxsize=4096)
def _normalised(raw: str, region: str | None) -> str:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber("not a phone number") from exc
    if not phonenumbers.is_possible_number(number):
        raise InvalidNumber("not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def lock_contact(session: Session, e164: str, *, seen_at: datetime | None = None) -> Contact:
    """Find or create the contact for ``e164`` and lock its row for this transaction.

    Every inbound message of a person takes this lock first, so two messages of one person are
    handled one after the other on any number of web processes (on SQLite the whole write
    transaction is serialised by BEGIN IMMEDIATE instead). With ``seen_at`` the lock is taken by
    the UPDATE that records it: one round trip on the webhook's path instead of two.

    The row is found by any of the configured lookup keys (a key rotation rewrites hashes while
    Ruta serves); a new row gets the current key's hash. A found row keeps its hash: rewriting it
    here would hide the person from a process still on the previous configuration.
    """
    vault = crypto.current()
    digests = vault.lookup_hashes(e164)
    query = (
        select(Contact)
        .where(Contact.phone_hash.in_(digests))
        .order_by(Contact.id)
        .with_for_update()
    )
    if seen_at is not None:
        found = session.scalars(
            update(Contact)
            .where(Contact.phone_hash.in_(digests))
            .values(last_seen_at=seen_at)
            .returning(Contact),
            execution_options={"synchronize_session": False},
        ).all()
    else:
        found = session.scalars(query).all()
    if found:
        return _oldest(found)
    try:
        with session.begin_nested():
            contact = Contact(phone_hash=vault.lookup_hash(e164), phone=e164, opted_out=False)
            session.add(contact)
        return contact
    except IntegrityError:  # created by a concurrent first message: take that one
        return _oldest(session.scalars(query.execution_options(populate_existing=True)).all())


def _oldest(found: Sequence[Contact]) -> Contact:
    # Two rows for one number only come from two processes on different lookup keys creating
    # it at the same moment (`ruta keys rotate` reports them); the older holds the history.
    assert found
    return min(found, key=lambda contact: contact.id)


def find_contact(session: Session, e164: str) -> Contact | None:
    hashes = crypto.current().lookup_hashes(e164)
    return session.scalars(
        select(Contact).where(Contact.phone_hash.in_(hashes)).order_by(Contact.id).limit(1)
    ).first()


# --- the webhooks' path: Core statements (ruta/sql.py) ----------------------------------------


@dataclass
class ContactRow:
    """What a message's handling needs of its sender (never the number: it is not decrypted)."""

    id: int
    language: str | None
    opted_out: bool
    rating_asked_at: datetime | None


def _row(rows: Sequence[Row]) -> ContactRow:
    # Two rows for one number: see _oldest.
    return ContactRow(*min(rows, key=lambda row: row[0]))


_RETURNED = (Contact.id, Contact.language, Contact.opted_out, Contact.rating_asked_at)
_LOCKS: dict[int, Prepared] = {}
_CREATE = Prepared(
    lambda dialect: (
        (postgresql_insert if dialect == "postgresql" else sqlite_insert)(Contact)
        .values(
            phone_hash=bindparam("new_hash"),
            phone=bindparam("phone"),
            opted_out=False,
            created_at=bindparam("created"),
            last_seen_at=bindparam("now"),
        )
        .on_conflict_do_update(
            index_elements=["phone_hash"], set_={"last_seen_at": bindparam("now")}
        )
        .returning(*_RETURNED)
    )
)


def hash_binds(count: int) -> list[Any]:
    """The parameters ``h0``.. ``h{count-1}``: the lookup hashes of one number, one per key."""
    return [bindparam(f"h{i}") for i in range(count)]


def hash_values(e164: str) -> dict[str, str]:
    return {f"h{i}": digest for i, digest in enumerate(crypto.current().lookup_hashes(e164))}


def matches(count: int) -> ColumnElement[bool]:
    return Contact.phone_hash.in_(hash_binds(count))


def contact_id_of(count: int) -> ScalarSelect[int]:
    """The id of the number's contact (the oldest, if two), for statements sent in the same
    round trip as the lock, before its result is known."""
    return select(Contact.id).where(matches(count)).order_by(Contact.id).limit(1).scalar_subquery()


def lock(hashes: dict[str, str], now: datetime) -> Call:
    """Lock the number's contact row by recording when it was seen (see ``lock_contact``):
    no row when the number is new, then ``create``."""
    prepared = _LOCKS.get(len(hashes))
    if prepared is None:
        prepared = _LOCKS[len(hashes)] = Prepared(
            update(Contact)
            .where(matches(len(hashes)))
            .values(last_seen_at=bindparam("now"))
            .returning(*_RETURNED)
        )
    return prepared(now=now, **hashes)


def create(e164: str, now: datetime) -> Call:
    """Create the number's contact under the current lookup key, or lock the one a concurrent
    first message created (``ON CONFLICT DO UPDATE`` waits for it and locks it)."""
    return _CREATE(
        new_hash=crypto.current().lookup_hash(e164),
        phone=e164,
        created=utcnow(),
        now=now,
    )


def locked(rows: Sequence[Row]) -> ContactRow | None:
    return _row(rows) if rows else None
