"""SMS encoding and segment counting (3GPP TS 23.038), as PROTOCOLS.md section 3 sets out.

A text that fits the GSM 7-bit default alphabet (plus its extension table, two septets each) costs
160 septets in one SMS and 153 per part when concatenated; anything else goes as UCS-2: 70 UTF-16
units in one SMS, 67 per part. Nothing a reader sees as one character is split across two parts:
not an extension character, and not a grapheme cluster (a flag, a letter with combining accents,
an emoji sequence), which moves whole to the next part as Twilio's segment calculator counts it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

import regex

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\x0c")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67

Encoding = Literal["GSM-7", "UCS-2"]
#: One user-perceived character (Unicode extended grapheme cluster, UAX #29).
_GRAPHEME = regex.compile(r"\X")


@dataclass(frozen=True)
class SmsCost:
    encoding: Encoding
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _pack(widths: list[int], single: int, part: int) -> int:
    total = sum(widths)
    if total <= single:
        return 1  # an empty SMS still costs one
    segments, used = 1, 0
    for width in widths:
        if used + width > part:  # a cluster moves whole to the next part
            segments += 1
            used = 0
        while width > part:  # longer than a part (a run of combining marks): it must be cut
            segments += 1
            width -= part
        used += width
    return segments


def _utf16_units(cluster: str) -> int:
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in cluster)


def sms_cost(text: str) -> SmsCost:
    """How ``text`` travels as SMS: its encoding, size in units and number of segments."""
    if is_gsm7(text):
        widths = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        return SmsCost("GSM-7", sum(widths), _pack(widths, GSM7_SINGLE, GSM7_PART))
    # UTF-16: characters outside the BMP (emoji) take a surrogate pair; clusters stay whole.
    widths = [_utf16_units(cluster) for cluster in _GRAPHEME.findall(text)]
    return SmsCost("UCS-2", sum(widths), _pack(widths, UCS2_SINGLE, UCS2_PART))


#: Typographic characters word processors and phones put in a text, and their GSM-7 forms.
_PLAIN_PUNCTUATION = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2011": "-",
    "\u2026": "...",
    "\u2022": "-",
    "\u00a0": " ",
    "\u2009": " ",
    "\u202f": " ",
    "\t": " ",
}
#: Letters kept although they carry a mark: Spanish's ñ is a letter of its own ("año" is not
#: "ano"), and GSM-7 has it.
_KEPT = frozenset("ñÑ")


def to_gsm7(text: str) -> str:
    """``text`` without accents (á to a, ü to u; ñ stays) and with plain quotes and dashes, so
    that it fits GSM-7 and an SMS holds 160 characters instead of 70. What has no plain form
    (an emoji) is left as it is: ``sms_cost`` of the result says whether it is GSM-7 now."""
    plain = []
    for ch in unicodedata.normalize("NFC", text):
        if ch in _KEPT:
            plain.append(ch)
            continue
        if ch in _PLAIN_PUNCTUATION:
            plain.append(_PLAIN_PUNCTUATION[ch])
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        plain.append(base if base and is_gsm7(base) else ch)
    return "".join(plain)
