"""Text helpers shared by the engine and the nodes: matching people's words and filling texts."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

#: The longest inbound text the engine looks at; Twilio reassembles up to 1600 characters.
MAX_INPUT_CHARS = 1600

_VARIABLE = re.compile(r"\{([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)\}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def clean_input(text: str | None) -> str:
    """Strip control and bidi-override characters and cap the length of what a person sent."""
    if not text:
        return ""
    return _CONTROL.sub("", text)[:MAX_INPUT_CHARS].strip()


def fold(text: str) -> str:
    """Case- and accent-insensitive form: ``SALÚD`` and ``salud`` both give ``salud``."""
    if text.isascii():  # most of what people type ("1", "hola"): no accents to take off
        return " ".join(text.lower().split())
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.split())


@lru_cache(maxsize=4096)
def fold_known(text: str) -> str:
    """``fold`` of a text of the flows or the directory (a label, a keyword), remembered: a
    word typed at a menu is compared with every option's. Never given a person's words."""
    return fold(text)


@lru_cache(maxsize=4096)
def to_gsm7(text: str) -> str:
    """The letters the GSM 7-bit alphabet lacks written plainly (``Escazú`` to ``Escazu``; ``ñ``
    and ``é``, which it has, stay), so a menu of names costs what its length says. Remembered:
    it is given menu labels (the directory's names, the flows' texts), a few hundred, on every
    step."""
    from flows.encoding import GSM7, GSM7_BASIC, GSM7_EXTENSION

    text = unicodedata.normalize("NFC", text)
    if GSM7.issuperset(text):  # most labels: nothing to write plainly
        return text
    out = []
    for ch in text:
        if ch in GSM7_BASIC or ch in GSM7_EXTENSION:
            out.append(ch)
            continue
        plain = "".join(
            c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)
        )
        out.append(plain if all(c in GSM7_BASIC for c in plain) else ch)
    return "".join(out)


def variables_in(template: str) -> list[str]:
    return _VARIABLE.findall(template)


def fill(template: str, values: Mapping[str, Any]) -> str:
    """Substitute ``{name}`` from ``values`` in one pass.

    Only whitelisted names are filled: whatever a person typed is inserted as-is and never read
    as a template again, so ``{0}`` or ``%s`` in their text stays literal.
    """

    def replace(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return "" if value is None else str(value)

    return _VARIABLE.sub(replace, template)
