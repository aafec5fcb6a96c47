"""Alerts: ALERTAS / ALERTS from anywhere, subscribing in the person's language, listing and
leaving subscriptions, STOP ending them all; over the Twilio webhook and over USSD."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ruta.contacts import find_contact
from ruta.db import db
from ruta.models import Municipality, Subscription
from tests.conftest import PERSON, TwilioPhone
from tests.gateway.test_ussd import AtHandset


def _subscriptions() -> list[tuple[str, str, str, bool, bool]]:
    """(municipality code, topic, language, active, ended) of the person's subscriptions."""
    with db.transaction() as session:
        contact = find_contact(session, PERSON)
        assert contact is not None
        rows = session.execute(
            select(
                Municipality.code,
                Subscription.topic,
                Subscription.language,
                Subscription.active,
                Subscription.ended_at,
            )
            .join(Municipality, Subscription.municipality_id == Municipality.id)
            .where(Subscription.contact_id == contact.id)
            .order_by(Subscription.id)
        ).all()
    return [
        (code, topic, lang, active, ended is not None) for code, topic, lang, active, ended in rows
    ]


def _subscribe(phone: TwilioPhone, place: str = "upala", topic: str = "salud") -> str:
    assert "1 Recibir avisos" in phone.text("ALERTAS")
    assert "municipio" in phone.text("1")
    assert "1 Todo" in phone.text(place)
    return phone.text(topic)


def test_alertas_from_nothing_opens_the_alerts_menu(phone: TwilioPhone) -> None:
    reply = phone.text("ALERTAS")
    assert "Avisos por SMS" in reply and "3 Dejar avisos" in reply


def test_alerts_from_nothing_is_english(phone: TwilioPhone) -> None:
    assert "1 Get alerts" in phone.text("alerts")


def test_alertas_from_the_main_menu_and_mid_flow(phone: TwilioPhone) -> None:
    phone.text("HOLA")
    assert "1 Recibir avisos" in phone.text("ALERTAS")
    assert "1 Buscar servicios" in phone.text("0")  # back leads to the main menu
    assert "1 Recibir avisos" in phone.text("4")  # the menu entry
    phone.text("HOLA")
    phone.text("1")
    assert "tipo de servicio" in phone.text("upala")
    assert "1 Recibir avisos" in phone.text("alertas")  # from inside another flow


def test_subscribe_stores_one_row_in_the_persons_language(phone: TwilioPhone) -> None:
    reply = _subscribe(phone)
    assert "Upala, tema Salud" in reply
    assert "ALERTAS para ver o dejar" in reply and "BAJA para no recibir nada" in reply
    assert _subscriptions() == [("cr-upala", "health", "es", True, False)]


def test_subscribing_in_english_keeps_english(phone: TwilioPhone) -> None:
    phone.text("ALERTS")
    phone.text("1")
    phone.text("los chiles")
    assert "Los Chiles, topic Everything" in phone.text("everything")
    assert _subscriptions() == [("cr-los-chiles", "general", "en", True, False)]


def test_subscribing_twice_keeps_one(phone: TwilioPhone) -> None:
    _subscribe(phone)
    _subscribe(phone)
    assert _subscriptions() == [("cr-upala", "health", "es", True, False)]


def test_list_and_leave_one(phone: TwilioPhone) -> None:
    _subscribe(phone)
    _subscribe(phone, topic="todo")
    phone.text("ALERTAS")
    listed = phone.text("2")
    assert "1 Upala: Salud" in listed and "2 Upala: Todo" in listed
    assert "Todos" not in listed
    assert "ya no recibira esos avisos" in phone.text("1")
    assert _subscriptions() == [
        ("cr-upala", "health", "es", False, True),
        ("cr-upala", "general", "es", True, False),
    ]
    phone.text("ALERTAS")
    assert "1 Upala: Todo" in phone.text("2")


def test_leave_all_then_nothing_to_list(phone: TwilioPhone) -> None:
    _subscribe(phone)
    _subscribe(phone, place="la cruz", topic="1")
    phone.text("ALERTAS")
    leave = phone.text("3")
    assert "1 Upala: Salud" in leave and "2 La Cruz: Todo" in leave and "3 Todos" in leave
    assert "ya no recibira esos avisos" in phone.text("todos")
    assert [active for *_, active, _ in _subscriptions()] == [False, False]
    phone.text("ALERTAS")
    assert "No tiene avisos" in phone.text("2")
    phone.text("ALERTAS")
    assert "No tiene avisos" in phone.text("3")


def test_leaving_an_ended_subscription_and_subscribing_again_reactivates_it(
    phone: TwilioPhone,
) -> None:
    _subscribe(phone)
    phone.text("ALERTAS")
    phone.text("3")
    phone.text("1")
    assert _subscriptions() == [("cr-upala", "health", "es", False, True)]
    _subscribe(phone)
    assert _subscriptions() == [("cr-upala", "health", "es", True, False)]


def test_stop_ends_all_subscriptions_and_start_does_not_bring_them_back(
    phone: TwilioPhone,
) -> None:
    _subscribe(phone)
    _subscribe(phone, topic="todo")
    assert "no le enviaremos mas mensajes" in phone.text("BAJA")
    assert [(active, ended) for *_, active, ended in _subscriptions()] == [(False, True)] * 2
    assert phone.text("ALERTAS") == ""  # opted out: silence
    assert "Hola otra vez" in phone.text("ALTA")
    with db.transaction() as session:
        contact = find_contact(session, PERSON)
        assert contact is not None and contact.opted_out is False
    assert [active for *_, active, _ in _subscriptions()] == [False, False]
    phone.text("ALERTAS")
    assert "No tiene avisos" in phone.text("2")
    _subscribe(phone)  # they subscribe again explicitly
    assert [active for *_, active, _ in _subscriptions()] == [True, False]


def test_subscribe_over_ussd(client: Any) -> None:
    handset = AtHandset(client)
    assert "4 Avisos" in handset.dial()
    kind, menu = handset.press("4")
    assert kind == "CON" and "1 Recibir avisos" in menu
    kind, places = handset.press("1")
    assert kind == "CON" and "5 Upala" in places
    kind, topics = handset.press("5")
    assert kind == "CON" and "1 Todo" in topics and "2 Salud" in topics
    kind, done = handset.press("2")
    assert kind == "END" and "Upala, tema Salud" in done
    assert _subscriptions() == [("cr-upala", "health", "es", True, False)]


def test_a_finished_alerts_session_over_ussd_is_not_offered_again(client: Any) -> None:
    first = AtHandset(client)
    first.dial()
    first.press("4")
    kind, screen = first.press("2")  # no alerts yet: an END screen
    assert kind == "END" and "No tiene avisos" in screen
    assert "1 Buscar servicios" in AtHandset(client).dial()
