"""Answer checks for ``ask`` nodes: each turns what a person typed into a value, or None."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

import phonenumbers

from flows.text import fold

#: yes/no words per language; a flow asking yes/no needs every one of its languages here.
#: No digits: 1 and 2 mean yes and no only where the screen showed "1 Si / 2 No" (the ask node).
YES_NO: dict[str, tuple[set[str], set[str]]] = {
    "es": ({"si", "s", "claro", "bueno"}, {"no", "n"}),
    "en": ({"yes", "y", "yeah", "ok"}, {"no", "n"}),
    "fr": ({"oui", "o"}, {"non", "n"}),
    "pt": ({"sim", "s"}, {"nao", "n"}),
    "ht": ({"wi"}, {"non", "n"}),
}

Check = Callable[[str, dict[str, Any], str], Any]


def _number(text: str, spec: dict[str, Any], language: str) -> int | None:
    if not re.fullmatch(r"-?\d{1,9}", text.strip()):
        return None
    value = int(text)
    if ("min" in spec and value < spec["min"]) or ("max" in spec and value > spec["max"]):
        return None
    return value


def _yes_no(text: str, spec: dict[str, Any], language: str) -> str | None:
    word = fold(text).strip(".!¡¿? ")
    yes, no = YES_NO.get(language, YES_NO["es"])
    all_yes = yes.union(*(y for y, _ in YES_NO.values()))
    all_no = no.union(*(n for _, n in YES_NO.values()))
    if word in yes or (word in all_yes and word not in no):
        return "yes"
    if word in no or (word in all_no and word not in yes):
        return "no"
    return None


def _phone(text: str, spec: dict[str, Any], language: str) -> str | None:
    try:
        number = phonenumbers.parse(text, spec.get("region", "CR"))
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _date(text: str, spec: dict[str, Any], language: str) -> str | None:
    text = text.strip()
    match = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text)
    if match:
        y, m, d = (int(g) for g in match.groups())
    else:
        # Day first, as written across Latin America: 5/3/2026, 05-03-26.
        match = re.fullmatch(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})", text)
        if not match:
            return None
        d, m, y = (int(g) for g in match.groups())
        y += 2000 if y < 100 else 0
    try:
        return date(y, m, d).isoformat()
    except ValueError:
        return None


def _choice(text: str, spec: dict[str, Any], language: str) -> str | None:
    word = fold(text)
    for value, words in (spec.get("choices") or {}).items():
        candidates = words.get(language, []) if isinstance(words, dict) else words
        if isinstance(words, dict):
            candidates = [w for ws in words.values() for w in ws]
        if word == fold(str(value)) or word in {fold(str(w)) for w in candidates}:
            return str(value)
    return None


def _text(text: str, spec: dict[str, Any], language: str) -> str | None:
    """Free text; a ``skip`` word (``NO``) answers with nothing rather than being saved."""
    text = text.strip()
    if fold(text) in {fold(str(w)) for w in spec.get("skip", [])}:
        return ""
    if not text or len(text) > int(spec.get("max_length", 500)):
        return None
    return text


CHECKS: dict[str, Check] = {
    "number": _number,
    "yes_no": _yes_no,
    "phone": _phone,
    "date": _date,
    "choice": _choice,
    "text": _text,
}
