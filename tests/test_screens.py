"""Every screen a person can reach fits: each menu page, re-prompt, help and error screen of every
default flow, over the demo directory in the database, in Spanish and English, on SMS (2
segments) and USSD (182 characters), for a phone of each demo country (issue 13, test 1)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from flows.context import Budget
from flows.encoding import sms_cost
from flows.engine import Engine
from flows.loader import load_directory
from flows.text import fold
from flows.validators import CHECKS
from ruta.budgets import sms_budget, ussd_budget
from ruta.db import db
from ruta.directory import DatabaseServices
from ruta.models import ConversationSession
from tests.conftest import TwilioPhone
from tests.flows.walk import walk
from tests.gateway.test_ussd import AtHandset

#: A phone of each demo country (the municipality menu and emergency numbers follow it).
PHONES = {
    "CR": "+50688001122",
    "GT": "+50241234567",
    "HN": "+50431234567",
    "PA": "+50761234567",
    "MX": "+525512345678",
}


def budgets() -> dict[str, Budget]:
    """The budgets the webhooks use, from the app's configuration (the defaults)."""
    return {"sms": sms_budget(), "ussd": ussd_budget(182, "*123#")}


def over_budget(text: str, channel: str) -> bool:
    if channel == "ussd":
        return len(text) > 182
    return sms_cost(text).segments > 2


@pytest.mark.parametrize("country", sorted(PHONES))
@pytest.mark.parametrize("language", ["es", "en"])
@pytest.mark.parametrize("channel", ["sms", "ussd"])
def test_every_reachable_screen_fits(app: Flask, country: str, language: str, channel: str) -> None:
    engine = Engine(load_directory())
    budget = budgets()[channel]
    with db.transaction() as session:
        screens = walk(
            engine,
            lambda: DatabaseServices(
                session, channel=channel, contact_id=None, number=PHONES[country]
            ),
            budget,
            language,
        )
        session.rollback()  # the walk's cases and unmet needs are not kept
    texts = [s.text for s in screens]
    # The walk reached the screens that matter: places, their services, help and errors.
    assert len(screens) > 300
    assert any("Upala" in t or "Panam" in t for t in texts)
    too_long = [
        f"{' > '.join(s.path)}: {len(s.text)} chars, {sms_cost(s.text).segments} SMS\n{s.text}"
        for s in screens
        if over_budget(s.text, channel)
    ]
    assert too_long == [], "\n\n".join(too_long[:5]) + f"\n... {len(too_long)} in all"


def option_lines(screen: str) -> list[str]:
    """The numbered lines of a screen, accents folded (USSD may show them without)."""
    return [fold(line) for line in screen.splitlines() if line[:1].isdigit()]


def test_numbers_stay_across_help_and_an_invalid_answer_on_sms_and_ussd(client: Any) -> None:
    """Issue 13, test 3: a paged menu keeps its pages and numbers after AYUDA and after an
    answer that is not an option, and shows the same numbers on SMS and USSD."""
    phone = TwilioPhone(client)
    handset = AtHandset(client, number="+50688002233")
    phone.text("HOLA")
    phone.text("2")  # ask for support
    sms_first = phone.text("si")  # somewhere safe: what kind of help (two pages)
    handset.dial()
    handset.press("2")
    ussd_first = handset.press("1")[1]
    assert "9 Mas" in sms_first and "9 Mas" in ussd_first
    assert option_lines(sms_first) == option_lines(ussd_first)  # one number, one option
    for word in ("AYUDA", "77"):
        again = phone.text(word)
        assert option_lines(again) == option_lines(sms_first), word
        screen = handset.press(word)[1]
        assert option_lines(screen) == option_lines(ussd_first), word
    sms_second = phone.text("9")
    ussd_second = handset.press("9")[1]
    assert option_lines(sms_second) == option_lines(ussd_second)
    assert not set(option_lines(sms_second)) & set(option_lines(sms_first))
    assert option_lines(phone.text("AYUDA")) == option_lines(sms_second)  # still page 2
    assert option_lines(handset.press("AYUDA")[1]) == option_lines(ussd_second)
    # And the number means what the page showed: 1 on page 2 is its first option.
    first_there = option_lines(sms_second)[0].split(" ", 1)[1]
    assert "municipio" in phone.text("1")
    assert "municipio" in handset.press("1")[1]
    with db.transaction() as session:
        states = [
            json.loads(s)["vars"]["category_label"]
            for s in session.scalars(select(ConversationSession.state))
        ]
    assert [fold(s) for s in states] == [first_there, first_there]


def test_ussd_yes_no_by_1_and_2(client: Any) -> None:
    """Issue 13, test 4: a yes/no question on USSD shows "1 Si / 2 No"; 2 means no there."""
    handset = AtHandset(client)
    handset.dial()
    safe = handset.press("2")[1]
    assert "lugar seguro" in safe and "1 Si" in safe.splitlines() and "2 No" in safe.splitlines()
    assert "SI o NO" not in safe
    not_safe = handset.press("2")[1]
    assert "911" in not_safe and "1 Salud" in not_safe  # "2 No": not somewhere safe
    other = AtHandset(client, number="+50688003344")
    other.dial()
    other.press("2")
    safe_now = other.press("1")[1]
    assert "911" not in safe_now and "1 Salud" in safe_now  # "1 Si": somewhere safe


def test_sms_yes_no_says_1_and_2_and_takes_them(phone: TwilioPhone) -> None:
    phone.text("HOLA")
    question = phone.text("2")
    assert "SI (1) o NO (2)" in question
    assert "911" in phone.text("2")


def test_two_is_no_only_where_the_screen_shows_it() -> None:
    """The words alone take no digits: 2 is "no" only because the question showed "2 No"."""
    assert CHECKS["yes_no"]("2", {}, "es") is None
    assert CHECKS["yes_no"]("1", {}, "en") is None
    assert CHECKS["yes_no"]("no", {}, "es") == "no"


def test_ussd_end_screens_name_the_code_to_dial(client: Any) -> None:
    handset = AtHandset(client)
    handset.dial()
    handset.press("3")  # information and rights
    kind, screen = handset.press("1")  # the asylum text, an end screen
    assert kind == "END"
    assert "*123#" in screen and "HOLA" not in screen


def listing(phone: TwilioPhone, *words: str) -> str:
    """Every page of the services found, asking for more while a page offers it."""
    pages = [phone.text(word) for word in words]
    while "9 Mas" in pages[-1] or "9 More" in pages[-1]:
        pages.append(phone.text("9"))
    return "\n".join(pages)


def test_a_temporarily_closed_service_appears_with_its_notice_after_open_ones(
    phone: TwilioPhone,
) -> None:
    """Issue 13, test 5: the admin's notice reaches people, after the services that are open."""
    found = listing(phone, "HOLA", "1", "upala", "salud")
    assert "Ebais Upala Centro" in found and "Consulta movil Upala" in found
    assert "Clinica temporal Upala Norte" in found
    closed = next(line for line in found.splitlines() if "Upala Norte" in line)
    assert "Cerrado por ahora" in closed and "Cerrado por obras" in closed
    assert found.index("Upala Norte") > found.index("Consulta movil Upala")
    assert found.index("Upala Norte") > found.index("Ebais Upala Centro")


def test_opening_hours_in_words_people_read(phone: TwilioPhone) -> None:
    upala = listing(phone, "HOLA", "1", "upala", "salud")
    assert "Lun-Vie 7-16" in upala and "Mar y Jue 9-13" in upala
    shelter = listing(phone, "HOLA", "1", "los chiles", "albergue")
    assert "Albergue de paso Los Chiles" in shelter and "24 horas" in shelter
    assert "0-23:59" not in shelter and "Lu-Do" not in shelter
    english = listing(phone, "HOLA", "5", "2", "1", "los chiles", "shelter")
    assert "24 hours" in english and "Mo-Su" not in english


def test_people_see_their_own_country_first(client: Any) -> None:
    costa_rica = TwilioPhone(client)
    costa_rica.text("HOLA")
    places = costa_rica.text("1")
    assert option_lines(places) == [
        "1 escazu",
        "2 la cruz",
        "3 los chiles",
        "4 san carlos",
        "5 upala",
        "6 otro pais",
    ]
    others = costa_rica.text("6")
    assert "Mexicali" in others and "Upala" not in others and "Panama" in others
    number = next(line.split(" ")[0] for line in others.splitlines() if "Mexicali" in line)
    assert "tipo de servicio" in costa_rica.text(number)
    panama = TwilioPhone(client, PHONES["PA"])
    panama.text("HOLA")
    assert option_lines(panama.text("1")) == ["1 chiriqui", "2 darien", "3 panama", "4 otro pais"]
    handset = AtHandset(client, PHONES["PA"])
    handset.dial()
    assert option_lines(handset.press("1")[1])[-1] == "4 otro pais"  # the same on USSD


def test_english_texts_are_wholly_english(client: Any) -> None:
    guatemala = TwilioPhone(client, PHONES["GT"])
    guatemala.text("HELLO")
    guatemala.text("2")
    danger = guatemala.text("no")
    assert "call 110 or 1500 now" in danger and " o " not in danger
    spanish = TwilioPhone(client, "+50241234568")
    spanish.text("HOLA")
    spanish.text("2")
    assert "110 o 1500" in spanish.text("no")
