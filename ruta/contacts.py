"""Contacts: one per E.164 number, found by keyed hash and locked while a message is handled."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import phonenumbers
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ruta import crypto
from ruta.models import Contact


class InvalidNumber(ValueError):
    """Not a phone number we can reply to."""


def normalise_number(raw: str, region: str | None = None) -> str:
    """E.164 form of ``raw``; ``region`` reads numbers written without a country code."""
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
