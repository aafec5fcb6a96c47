"""Protection rules: numbers and bodies encrypted at rest, never in logs; health endpoints."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
from cryptography.fernet import Fernet
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from ruta import crypto
from ruta.db import db
from tests.conftest import PERSON, TwilioPhone

VAULT = crypto.Vault(crypto.generate_key())


def test_numbers_and_bodies_are_encrypted_at_rest(phone: TwilioPhone) -> None:
    phone.text("HOLA")
    phone.text("2")
    phone.text("si")
    phone.text("1")
    phone.text("upala")
    phone.text("si")
    with db.transaction() as session:
        dump = []
        for table in ("contacts", "messages", "conversation_sessions", "cases"):
            for row in session.execute(text(f"SELECT * FROM {table}")):  # noqa: S608
                dump.append(" ".join(str(v) for v in row))
    raw = "\n".join(dump)
    assert PERSON not in raw and PERSON.lstrip("+") not in raw
    assert "Buscar servicios" not in raw and "HOLA" not in raw and "upala" not in raw
    assert crypto.current().lookup_hash(PERSON) in raw  # found by keyed hash only


def test_logs_hold_no_number_and_no_body(phone: TwilioPhone, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    phone.text("HOLA")
    phone.text("mi secreto 12345")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "inbound handled" in logged  # something is logged, so the check means something
    assert PERSON not in logged and PERSON.lstrip("+") not in logged
    assert "mi secreto" not in logged


def test_keys_rotate_without_breaking_lookups() -> None:
    old = crypto.generate_key()
    before = crypto.Vault(old)
    token = before.encrypt("+50688001122")
    after = crypto.Vault(f"{crypto.generate_key()},{old}")
    assert after.decrypt(token) == "+50688001122"
    assert after.lookup_hash("+50688001122") == before.lookup_hash("+50688001122")
    new_key = crypto.generate_key()
    rotated = crypto.Vault(f"{new_key},{old}").rotate(token)
    assert crypto.Vault(new_key).decrypt(rotated) == "+50688001122"  # old key no longer needed


def test_lookup_keys_default_to_the_last_data_key_and_older_ones_are_still_tried() -> None:
    number = "+50688001122"
    old, new, lookup, next_lookup = (crypto.generate_key() for _ in range(4))
    today = crypto.Vault(old)
    # A deployment with RUTA_DATA_KEY alone: the hash key comes from the last data key, as before.
    assert crypto.Vault(f"{new},{old}").lookup_hash(number) == today.lookup_hash(number)
    # Opting in with the last data key as lookup key changes no hash.
    assert crypto.Vault(old, old).lookup_hash(number) == today.lookup_hash(number)
    during = crypto.Vault(f"{new},{old}", lookup)
    assert during.lookup_hash(number) != today.lookup_hash(number)  # new rows: the new key
    # Rows not yet rewritten are still found, through the key of the last data key.
    assert during.lookup_hashes(number) == [during.lookup_hash(number), today.lookup_hash(number)]
    after = crypto.Vault(new, lookup)
    assert after.lookup_hash(number) == during.lookup_hash(number)
    assert today.lookup_hash(number) not in after.lookup_hashes(number)  # the old key is gone
    again = crypto.Vault(new, f"{next_lookup},{lookup}")
    assert after.lookup_hash(number) in again.lookup_hashes(number)
    with pytest.raises(crypto.DataKeyError):
        crypto.Vault(new, "not-a-key")


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_any_text_comes_back_as_it_went_in(text: str) -> None:
    assert VAULT.decrypt(VAULT.encrypt(text)) == text


@settings(max_examples=300, deadline=None)
@given(token=st.one_of(st.text(), st.text().map(lambda t: crypto.PREFIX + t)))
def test_anything_that_is_not_a_value_of_ours_is_refused_with_one_error(token: str) -> None:
    with pytest.raises(crypto.DataKeyError):
        VAULT.decrypt(token)
    assert not VAULT.is_current(token)


def test_values_are_sealed_and_a_changed_byte_is_refused() -> None:
    token = VAULT.encrypt("+50688001122")
    assert token.startswith(crypto.PREFIX) and "50688001122" not in token
    assert VAULT.encrypt("+50688001122") != token  # a fresh nonce each time
    raw = bytearray(base64.urlsafe_b64decode(token[len(crypto.PREFIX) :]))
    for index in range(len(raw)):  # key id, nonce, ciphertext, tag
        changed = raw.copy()
        changed[index] ^= 0x01
        forged = crypto.PREFIX + base64.urlsafe_b64encode(bytes(changed)).decode()
        with pytest.raises(crypto.DataKeyError):
            VAULT.decrypt(forged)
    for garbage in ("", crypto.PREFIX, crypto.PREFIX + "!!!", "gAAAAAnot-a-token", token[:-8]):
        with pytest.raises(crypto.DataKeyError):
            VAULT.decrypt(garbage)
    with pytest.raises(crypto.DataKeyError):  # another key's vault
        crypto.Vault(crypto.generate_key()).decrypt(token)


def test_a_value_sealed_under_one_key_is_not_read_as_another_keys() -> None:
    """The key id is authenticated with the value: relabelled as the other key's, it fails."""
    first, second = crypto.generate_key(), crypto.generate_key()
    both = crypto.Vault(f"{first},{second}")
    token = crypto.Vault(second).encrypt("texto")
    assert both.decrypt(token) == "texto"
    raw = base64.urlsafe_b64decode(token[len(crypto.PREFIX) :])
    first_id = base64.urlsafe_b64decode(crypto.Vault(first).encrypt("x")[len(crypto.PREFIX) :])[:4]
    relabelled = crypto.PREFIX + base64.urlsafe_b64encode(first_id + raw[4:]).decode()
    with pytest.raises(crypto.DataKeyError):
        both.decrypt(relabelled)


def test_fernet_tokens_of_an_earlier_ruta_are_read_and_rotated() -> None:
    old = crypto.generate_key()
    legacy = Fernet(old.encode()).encrypt(b"+50688001122").decode()
    assert crypto.Vault(old).decrypt(legacy) == "+50688001122"
    assert not crypto.Vault(old).is_current(legacy)  # rewritten by `ruta keys rotate`
    new = crypto.generate_key()
    rotated = crypto.Vault(f"{new},{old}").rotate(legacy)
    assert rotated.startswith(crypto.PREFIX) and crypto.Vault(new).is_current(rotated)
    assert crypto.Vault(new).decrypt(rotated) == "+50688001122"
    assert not crypto.Vault(f"{old},{new}").is_current(rotated)  # sealed under a key now second
    with pytest.raises(crypto.DataKeyError):
        crypto.Vault(new).decrypt(legacy)


def test_a_key_listed_twice_is_one_key() -> None:
    key = crypto.generate_key()
    assert crypto.Vault(f"{key},{key}").decrypt(crypto.Vault(key).encrypt("x")) == "x"


def test_a_bad_data_key_fails_fast() -> None:
    with pytest.raises(crypto.DataKeyError):
        crypto.Vault("not-a-key")
    with pytest.raises(crypto.DataKeyError):
        crypto.Vault("")


def test_healthz_and_readyz(client: Any) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["checks"] == {"database": "ok", "migrations": "ok", "redis": "ok"}


def test_readyz_reports_redis_down(app: Any, client: Any) -> None:
    from redis import Redis

    app.extensions["ruta.redis"] = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["redis"].startswith("unreachable")


def test_message_text_is_purged_after_the_retention_days(app: Any, phone: TwilioPhone) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from ruta import contacts, retention
    from ruta.models import Message
    from tests.conftest import Clock
    from workers.jobs import sweep

    phone.text("HOLA")  # an inbound message and its reply
    with db.transaction() as session:
        person = contacts.lock_contact(session, PERSON)
        session.add(
            Message(
                direction="out",
                channel="twilio",
                contact_id=person.id,
                body="pendiente de enviar",
                status="queued",
            )
        )

    def texts() -> list[str | None]:
        with db.transaction() as session:
            return list(session.scalars(select(Message.body).order_by(Message.id)))

    assert all(texts())
    app.extensions["ruta.clock"] = Clock(datetime.now(UTC) + timedelta(days=29))
    assert sweep()["message_texts_purged"] == 0  # not old enough yet
    app.extensions["ruta.redis"].flushdb()  # the hourly turn, taken by that sweep
    app.extensions["ruta.clock"] = Clock(datetime.now(UTC) + timedelta(days=31))
    assert sweep()["message_texts_purged"] == 2
    assert texts() == [None, None, "pendiente de enviar"]  # what still has to go out stays
    phone.text("HOLA")
    assert sweep()["message_texts_purged"] == 0  # once an hour, however many workers sweep
    with db.transaction() as session:
        assert retention.purge_message_text(session, datetime.now(UTC), 0) == 0  # 0: keep
        later = datetime.now(UTC) + timedelta(days=31)
        assert retention.purge_message_text(session, later, 30) == 2  # the second exchange
