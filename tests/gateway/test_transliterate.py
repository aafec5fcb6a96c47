"""USSD screens written plainly for handsets without accents: the per-character table
(ruta/ussd.py) gives, for any text, what decomposing the whole text and dropping its marks
gives."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from ruta.ussd import transliterate


def decomposed_without_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.replace("¿", "").replace("¡", ""))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def test_spanish_screens_lose_their_accents_and_inverted_marks() -> None:
    screen = "¿Qué necesita?\n1 Atención médica\n2 Niñez y educación\n¡Gracias!"
    assert (
        transliterate(screen) == "Que necesita?\n1 Atencion medica\n2 Ninez y educacion\nGracias!"
    )


@given(st.text())
def test_any_text_is_written_as_its_whole_decomposition(text: str) -> None:
    assert transliterate(text) == decomposed_without_marks(text)
