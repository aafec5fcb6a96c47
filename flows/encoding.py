"""SMS encoding and segment counting (3GPP TS 23.038), as PROTOCOLS.md section 3 sets out.

A text that fits the GSM 7-bit default alphabet (plus its extension table, two septets each) costs
160 septets in one SMS and 153 per part when concatenated; anything else goes as UCS-2: 70 UTF-16
units in one SMS, 67 per part. Nothing a reader sees as one character is split across two parts:
not an extension character, and not a grapheme cluster (a flag, a letter with combining accents,
an emoji sequence), which moves whole to the next part as Twilio's segment calculator counts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import regex

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\x0c")
GSM7 = GSM7_BASIC | GSM7_EXTENSION

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
    return GSM7.issuperset(text)


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
        if GSM7_EXTENSION.isdisjoint(text):  # one septet each: no cluster to keep whole
            units = len(text)
            segments = 1 if units <= GSM7_SINGLE else -(-units // GSM7_PART)
            return SmsCost("GSM-7", units, segments)
        widths = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        return SmsCost("GSM-7", sum(widths), _pack(widths, GSM7_SINGLE, GSM7_PART))
    # UTF-16: characters outside the BMP (emoji) take a surrogate pair; clusters stay whole.
    widths = [_utf16_units(cluster) for cluster in _GRAPHEME.findall(text)]
    return SmsCost("UCS-2", sum(widths), _pack(widths, UCS2_SINGLE, UCS2_PART))
