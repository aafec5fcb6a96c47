"""Contacts: one per E.164 number, found by keyed hash and locked while a message is handled."""

from __future__ import annotations

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
    """
    digest = crypto.current().lookup_hash(e164)
    query = select(Contact).where(Contact.phone_hash == digest).with_for_update()
    if seen_at is not None:
        contact = session.scalars(
            update(Contact)
            .where(Contact.phone_hash == digest)
            .values(last_seen_at=seen_at)
            .returning(Contact),
            execution_options={"synchronize_session": False},
        ).one_or_none()
    else:
        contact = session.scalar(query)
    if contact is not None:
        return contact
    try:
        with session.begin_nested():
            contact = Contact(phone_hash=digest, phone=e164, opted_out=False)
            session.add(contact)
        return contact
    except IntegrityError:  # created by a concurrent first message: take that one
        contact = session.scalar(query.execution_options(populate_existing=True))
        assert contact is not None
        return contact


def find_contact(session: Session, e164: str) -> Contact | None:
    return session.scalar(
        select(Contact).where(Contact.phone_hash == crypto.current().lookup_hash(e164))
    )
