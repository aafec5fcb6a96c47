"""Expiry, back and a language switch in the middle of a flow, over the Twilio webhook."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask

from tests.conftest import Clock, TwilioPhone


def test_session_expires_after_inactivity(app: Flask, phone: TwilioPhone) -> None:
    clock = Clock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    app.extensions["ruta.clock"] = clock
    phone.text("HOLA")
    phone.text("1")  # now on the municipality menu
    clock.now += timedelta(minutes=29)
    assert "tipo de servicio" in phone.text("upala")  # still alive at 29 minutes
    clock.now += timedelta(minutes=31)
    reply = phone.text("1")
    assert "Su conversacion anterior se cerro" in reply
    assert "1 Buscar servicios" in reply  # started over: "1" was not taken as a category


def test_back_returns_to_the_previous_question(phone: TwilioPhone) -> None:
    phone.text("HOLA")
    phone.text("1")
    assert "tipo de servicio" in phone.text("upala")
    back = phone.text("0")
    assert "municipio" in back
    assert "tipo de servicio" in phone.text("los chiles")
    assert "0 " not in phone.text("ATRAS").splitlines()[0]
    assert "1 Buscar servicios" in phone.text("atras")


def test_language_switch_mid_flow(phone: TwilioPhone) -> None:
    phone.text("HOLA")
    phone.text("1")
    assert "tipo de servicio" in phone.text("upala")
    menu = phone.text("IDIOMA")
    assert "English" in menu
    switched = phone.text("2")
    assert "Language: English" in switched
    assert "What kind of service" in switched and "1 Health" in switched
    services = phone.text("health")
    assert "Ebais Upala Centro" in services and "Mon-Fri 7-16" in services
    assert "Which municipality" not in phone.text("HELLO")  # main menu, in English
    assert "Find services" in phone.text("MENU")


def test_a_new_contact_saying_hello_gets_english(phone: TwilioPhone) -> None:
    assert "1 Find services" in phone.text("Hello")


def test_invalid_choice_is_explained_and_the_menu_repeated(phone: TwilioPhone) -> None:
    phone.text("HOLA")
    reply = phone.text("7")
    assert "No entendimos" in reply and "1 Buscar servicios" in reply


def test_help_keeps_the_place(phone: TwilioPhone) -> None:
    phone.text("HOLA")
    phone.text("1")
    reply = phone.text("AYUDA")
    assert "0: atras" in reply and "municipio" in reply
