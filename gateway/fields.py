"""The type, length and shape of every field a provider sends, checked before anything is stored.

A field that does not fit is a ``BadField`` (answered 400), never a database error: PostgreSQL
refuses NUL characters and integers past int4, and a column has a length. Shapes are strict
because some things lean on them: Twilio's signature concatenates name+value pairs, so a captured
request can be re-split (``MessageSid=SMx`` + ``NumMedia=0`` signs as ``MessageSid=SMxNumMedia0``)
and only the shape of the id tells the replay from a new message.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ruta.contacts import InvalidNumber, normalise_number

#: Twilio message SIDs: "SM" (SMS) or "MM" (MMS), then 32 lowercase hex digits.
TWILIO_MESSAGE_SID = re.compile(r"(?:SM|MM)[0-9a-f]{32}")
TWILIO_ACCOUNT_SID = re.compile(r"AC[0-9a-f]{32}")
#: Africa's Talking message ids (UUIDs, ``ATXid_...``) and USSD session ids (``ATUid_...``), and
#: the JSON aggregator's session ids, have no published shape: a plain ASCII token, at most the
#: length of its column (``messages.provider_message_id`` 64, ``ussd_sessions.session_id`` 100).
MESSAGE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
#: E.164 as providers send it: the "+" (left out by some USSD aggregators), 4 to 15 ASCII digits.
NUMBER = re.compile(r"\+[1-9][0-9]{3,14}")
BARE_NUMBER = re.compile(r"\+?[1-9][0-9]{3,14}")
#: A USSD code is digits, "*" and "#".
SERVICE_CODE = re.compile(r"[0-9*#]{0,32}")
COUNT = re.compile(r"[0-9]{1,3}")
ERROR_CODE = re.compile(r"[0-9]{1,10}")
#: Africa's Talking failure reasons are words like ``InsufficientCredit``.
REASON = re.compile(r"[A-Za-z0-9 _.-]{1,64}")
#: The newest USSD input, or every input so far joined by "*" (Africa's Talking).
MAX_USSD_TEXT = 1000
#: Largest sequence number kept (an int4 column).
MAX_SEQUENCE = 2**31 - 1


class BadField(ValueError):
    """A request field of the wrong type or shape; the message names the field."""


def shaped(value: Any, pattern: re.Pattern[str], name: str) -> str:
    """``value`` if it is a string matching ``pattern`` whole, else ``BadField``."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BadField(f"{name} is missing or not in the expected form")
    return value


def optional(value: Any, pattern: re.Pattern[str], name: str) -> str | None:
    """As ``shaped``, but an absent or empty field is None."""
    return None if value is None or value == "" else shaped(value, pattern, name)


def phone_number(value: Any, name: str, *, plus: bool = True) -> str:
    """E.164 of a sender. ``plus=False`` also takes the number without its "+" (and as a JSON
    integer), as USSD aggregators send it."""
    if isinstance(value, int) and not isinstance(value, bool) and not plus:
        value = str(value)
    raw = shaped(value, NUMBER if plus else BARE_NUMBER, name)
    try:
        return normalise_number(raw if raw.startswith("+") else f"+{raw}")
    except InvalidNumber:
        raise BadField(f"{name} is not a phone number") from None


def text(value: Any, name: str, *, max_chars: int) -> str:
    """Free text typed by a person: any characters (stored encrypted), bounded in length."""
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > max_chars:
        raise BadField(f"{name} must be text of at most {max_chars} characters")
    return value


def sequence(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQUENCE:
        raise BadField(f"Sequence must be a whole number from 0 to {MAX_SEQUENCE}")
    return value


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body that is one JSON object. Deep nesting is a ``RecursionError`` inside the
    parser (a 3,000-deep array), refused like any other body that is not an object."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadField("a JSON object is required") from None
    if not isinstance(body, dict):
        raise BadField("a JSON object is required")
    return body
