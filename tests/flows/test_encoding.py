"""SMS segment counting against the figures in PROTOCOLS.md section 3."""

from __future__ import annotations

import pytest

from flows.encoding import is_gsm7, sms_cost, to_gsm7


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", "GSM-7", 0, 1),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # extension characters count twice
        ("€" * 81, "GSM-7", 162, 2),
        ("a" * 152 + "€" + "a" * 10, "GSM-7", 164, 2),  # the € moves whole to part 2
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3),
        ("ñÑéÉüÜ¿¡àèìòù", "GSM-7", 13, 1),
        ("¿Cómo está?", "UCS-2", 11, 1),
        ("á" * 70, "UCS-2", 70, 1),
        ("á" * 71, "UCS-2", 71, 2),
        ("á" * 134, "UCS-2", 134, 2),
        ("á" * 135, "UCS-2", 135, 3),
        ("🆘" * 35, "UCS-2", 70, 1),  # outside the BMP: two UTF-16 units
        ("á" * 66 + "🆘" + "á" * 66, "UCS-2", 134, 3),  # a surrogate pair is never split
        ("`", "UCS-2", 1, 1),  # backtick is not in the GSM basic table
        # Grapheme clusters move whole to the next part, as Twilio's segment calculator counts:
        ("a" * 65 + "🇮🇹" + "b" * 64, "UCS-2", 133, 3),  # a flag: two surrogate pairs
        ("a" * 66 + "e\u0301" + "b" * 66, "UCS-2", 134, 3),  # a letter and its combining accent
        ("a" * 63 + "👩\u200d👩\u200d👧" + "b" * 60, "UCS-2", 131, 3),  # one family: 8 units
        ("a" * 60 + "🇮🇹" + "b" * 60, "UCS-2", 124, 2),  # the flag fits whole in part 1
    ],
)
def test_cost(text: str, encoding: str, units: int, segments: int) -> None:
    cost = sms_cost(text)
    assert (cost.encoding, cost.units, cost.segments) == (encoding, units, segments)


def test_spanish_vowels_with_acute_force_ucs2() -> None:
    for ch in "áíóúÁÍÓÚç":
        assert not is_gsm7(ch), ch
    for ch in "éÉñÑüÜ¿¡":
        assert is_gsm7(ch), ch


def test_the_version_without_accents_fits_gsm7_and_keeps_the_spanish_letter_n() -> None:
    accented = "¿Dónde está la oficina? Atención — “Año nuevo”, pingüino, ÁÉÍÓÚ…"
    plain = to_gsm7(accented)
    assert plain == '¿Donde esta la oficina? Atencion - "Año nuevo", pinguino, AEIOU...'
    assert sms_cost(accented).encoding == "UCS-2" and sms_cost(plain).encoding == "GSM-7"
    assert to_gsm7("ya sin tildes: 160 por SMS") == "ya sin tildes: 160 por SMS"
    # combining accents (as some keyboards type them) go too
    assert to_gsm7("cafe\u0301 Jose\u0301") == "cafe Jose"


def test_what_has_no_plain_form_is_left_and_still_costs_ucs2() -> None:
    assert to_gsm7("Hola 😀") == "Hola 😀"
    assert sms_cost(to_gsm7("Hola 😀")).encoding == "UCS-2"
