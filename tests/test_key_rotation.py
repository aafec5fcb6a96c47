"""`ruta keys rotate` (issue 12): every encrypted value under the current data key, every lookup
hash under the current lookup key, in batches, resumable, while Ruta keeps serving.

Each test runs Ruta on a database of its own: changing keys on the run's shared database would
leave the demo focal points unreadable for every later test. The fixture gives the run's database
and keys back afterwards.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy import column as sql_column
from sqlalchemy import func, select, table
from sqlalchemy.engine import make_url

from admin.accounts import create_user
from app import create_app
from cli import main
from providers.fake_provider import FakeProviderServer
from ruta import clock, contacts, crypto, demo_data, keyrotation, migrate, questions
from ruta.db import db, make_engine
from ruta.flowstore import publish_directory
from ruta.jobqueue import hand_over
from ruta.models import (
    Base,
    Case,
    CaseNote,
    Contact,
    ConversationSession,
    EncryptedText,
    Question,
    UssdSession,
)
from tests.conftest import PERSON, TwilioPhone, run_worker
from tests.gateway.test_ussd import AtHandset
from tests.test_referrals import DESCRIPTION, UPALA_1, ask_for_help
from workers.jobs import sweep

#: Where the PostgreSQL runs keep this file's tables, next to the run's own schema.
SCHEMA = "key_rotation"
#: The data key of the deployment before rotation, and the keys it rotates to.
OLD_DATA_KEY, NEW_DATA_KEY = crypto.generate_key(), crypto.generate_key()
LOOKUP_KEY, NEXT_LOOKUP_KEY = crypto.generate_key(), crypto.generate_key()
OTHER_PERSON, USSD_PERSON = "+50688003344", "+50688005566"
#: Enough extra people for the contacts table alone to take several batches.
EXTRA_PEOPLE = [f"+506880090{n:02d}" for n in range(12)]
QUESTION, ANSWER = "una pregunta para una persona", "Puede ir a la oficina el lunes"


class Phone(TwilioPhone):
    """A phone whose message ids are never those of an earlier message: a repeated id is a
    provider's redelivery, answered again and not handled."""

    def params(self, body: str, sid: str | None = None) -> dict[str, str]:
        return super().params(body, sid or f"SM{uuid.uuid4().hex}")


@dataclass
class Deployment:
    """Ruta on this test's own database, started with whatever keys a configuration names."""

    url: str
    config: dict[str, Any]

    def app(self, data_keys: str, lookup_keys: str | None = None) -> Flask:
        return create_app(
            {
                **self.config,
                "DATABASE_URL": self.url,
                "RUTA_DATA_KEY": data_keys,
                "RUTA_LOOKUP_KEYS": lookup_keys,
            }
        )

    def rotate(self, data_keys: str, lookup_keys: str | None, *args: str) -> Result:
        """`ruta keys rotate` through the real CLI, configured from the environment only."""
        env = {
            "RUTA_SECRET_KEY": self.config["RUTA_SECRET_KEY"],
            "RUTA_DATA_KEY": data_keys,
            "RUTA_LOOKUP_KEYS": lookup_keys,
            "DATABASE_URL": self.url,
            "REDIS_URL": self.config["REDIS_URL"],
            "RUTA_INSTANCE_DIR": self.config["RUTA_INSTANCE_DIR"],
        }
        return CliRunner().invoke(main, ["keys", "rotate", *args], env=env)


@pytest.fixture()
def deployment(
    prepared: dict[str, Any], fake_provider: FakeProviderServer, tmp_path: Any
) -> Iterator[Deployment]:
    shared = prepared["DATABASE_URL"]
    admin = None
    if make_url(shared).get_backend_name() == "postgresql":
        admin = make_engine(shared)
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            connection.exec_driver_sql(f"CREATE SCHEMA {SCHEMA}")
        url = (
            make_url(shared)
            .update_query_dict({"options": f"-csearch_path={SCHEMA}"})
            .render_as_string(hide_password=False)
        )
    else:
        url = f"sqlite:///{tmp_path / 'rotation.db'}"
    deployment = Deployment(url, prepared)
    app = deployment.app(OLD_DATA_KEY)  # a deployment from before RUTA_LOOKUP_KEYS existed
    migrate.upgrade()
    with db.transaction() as session:
        publish_directory(session, published_by="tests")
        demo_data.load(session)
    app.extensions["ruta.redis"].flushdb()
    fake_provider.reset()
    try:
        yield deployment
    finally:
        create_app(prepared).extensions["ruta.redis"].flushdb()  # the run's database and keys
        if admin is not None:
            with admin.begin() as connection:
                connection.exec_driver_sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            admin.dispose()


def populate(app: Flask) -> str:
    """People in every state Ruta keeps encrypted; returns the reference of the person's case."""
    client = app.test_client()
    with app.app_context():
        person = Phone(client)
        reference = ask_for_help(person)  # messages, a case with its description
        run_worker(app)  # the focal point's alert
        person.text("PREGUNTA")
        assert "Recibimos su pregunta" in person.text(QUESTION)
        with db.transaction() as session:
            question = session.scalars(select(Question)).one()
            work = questions.answer(
                session,
                question,
                ANSWER,
                actor="tests",
                now=clock.now(),
                channel="twilio",
                max_segments=2,
            )
        hand_over(work)
        run_worker(app)  # the answer goes out
        other = Phone(client, OTHER_PERSON)
        other.text("HOLA")
        other.text("1")  # half-way through a conversation
        handset = AtHandset(client, USSD_PERSON)
        handset.dial()
        handset.press("1")
        with db.transaction() as session:
            for number in EXTRA_PEOPLE:
                contacts.lock_contact(session, number)
            # Staff's own encrypted words: a user's phone and an internal note on the case.
            staff = create_user(
                session, "staff@ruta.test", "coordinator", "a long passphrase here", country="CR"
            )
            staff.phone = "+50670001234"
            case = session.scalars(select(Case).where(Case.reference == reference)).one()
            session.add(CaseNote(case_id=case.id, author=staff.email, body="llamar el martes"))
    return reference


def encrypted_columns() -> dict[str, list[str]]:
    """Every EncryptedText column of every table, from the models' metadata."""
    found: dict[str, list[str]] = {}
    for each in Base.metadata.sorted_tables:
        names = [c.name for c in each.columns if isinstance(c.type, EncryptedText)]
        if names:
            found[each.name] = names
    return found


def stored() -> dict[tuple[str, str, int], str]:
    """Every ciphertext and lookup hash exactly as the database holds it."""
    wanted = encrypted_columns()
    wanted["contacts"] = [*wanted["contacts"], "phone_hash"]
    found = {}
    with db.transaction() as session:
        for name, columns in wanted.items():
            raw = table(name, sql_column("id"), *(sql_column(c) for c in columns))
            for row in session.execute(select(raw)):
                for c in columns:
                    if row._mapping[c] is not None:
                        found[(name, c, row.id)] = row._mapping[c]
    return found


def readable(data_key: str) -> dict[tuple[str, str, int], str]:
    """Every encrypted value, decrypted with ``data_key`` alone (DataKeyError if any is not)."""
    vault = crypto.Vault(data_key)
    return {
        place: vault.decrypt(token) for place, token in stored().items() if place[1] != "phone_hash"
    }


def lookup_hashes() -> dict[int, str]:
    with db.transaction() as session:
        return dict(session.execute(select(Contact.id, Contact.phone_hash)).all())


def contact_id(number: str) -> int:
    with db.transaction() as session:
        found = contacts.find_contact(session, number)
        assert found is not None, number
        return found.id


def count(model: type[Base]) -> int:
    with db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def rewritten(result: Result) -> int:
    assert result.exit_code == 0, result.output
    found = re.search(r"(\d+) rows rewritten", result.output)
    assert found, result.output
    return int(found.group(1))


# --- issue 12, test 11 ---------------------------------------------------------------------


def test_rotate_leaves_every_row_readable_with_the_new_keys_alone(
    deployment: Deployment,
) -> None:
    app = deployment.app(OLD_DATA_KEY)
    reference = populate(app)
    with app.app_context():
        tables = {name for name, _, _ in stored()}
        assert tables == {*encrypted_columns(), "contacts"}  # something in every one
        before = readable(OLD_DATA_KEY)
        old_hashes = lookup_hashes()
        person, people = contact_id(PERSON), count(Contact)
        assert count(ConversationSession) >= 2 and count(UssdSession) == 1

    # Step by step as the README says: the new keys first, the old data key still listed.
    result = deployment.rotate(f"{NEW_DATA_KEY},{OLD_DATA_KEY}", LOOKUP_KEY)
    assert rewritten(result) > 0
    assert "Re-encrypting" in result.output  # the progress bar

    # The old data key and the old lookup key (derived from it) removed from the configuration.
    app = deployment.app(NEW_DATA_KEY, LOOKUP_KEY)
    with app.app_context():
        assert readable(NEW_DATA_KEY) == before  # every value, with the new data key alone
        with pytest.raises(crypto.DataKeyError):
            readable(OLD_DATA_KEY)
        vault = crypto.current()
        with db.transaction() as session:
            for found in session.scalars(select(Contact)):
                assert found.phone_hash == vault.lookup_hash(found.phone)
                assert found.phone_hash != old_hashes[found.id]

        client = app.test_client()
        phone = Phone(client)
        assert "Buscar servicios" in phone.text("HOLA")
        assert contact_id(PERSON) == person and count(Contact) == people  # the same person
        focal_point = Phone(client, UPALA_1)  # found by their number too
        assert f"Caso {reference} aceptado" in focal_point.text(f"OK {reference}")
        run_worker(app)
        assert count(Contact) == people

        assert "borramos sus datos" in phone.text("BORRAR")
        with db.transaction() as session:
            asked = session.get(Contact, person)
            assert asked is not None and asked.erase_requested_at is not None
        assert count(Contact) == people
        assert sweep()["people_erased"] == 1
        with db.transaction() as session:
            assert session.get(Contact, person) is None
            assert contacts.find_contact(session, PERSON) is None
        assert not [value for value in readable(NEW_DATA_KEY).values() if DESCRIPTION in value]


def test_values_an_earlier_ruta_wrote_as_fernet_tokens_are_read_and_rewritten(
    deployment: Deployment,
) -> None:
    """Before the AEAD format every value was a Fernet token of the same keys: a database of
    then is served as it is, and ``ruta keys rotate``, even with no new key, rewrites it."""
    app = deployment.app(OLD_DATA_KEY)
    reference = populate(app)
    fernet = Fernet(OLD_DATA_KEY.encode())
    with app.app_context():
        before = readable(OLD_DATA_KEY)
        with db.transaction() as session:
            for (name, column, row), plain in before.items():
                session.execute(
                    table(name, sql_column("id"), sql_column(column))
                    .update()
                    .where(sql_column("id") == row)
                    .values({column: fernet.encrypt(plain.encode()).decode()})
                )
        legacy = stored()
        assert all(
            legacy[place].startswith("gAAAAA") for place in before
        )  # as an earlier Ruta left it
        assert readable(OLD_DATA_KEY) == before
        focal_point = Phone(app.test_client(), UPALA_1)  # found, their case read: as before
        assert f"Caso {reference} aceptado" in focal_point.text(f"OK {reference}")

    assert rewritten(deployment.rotate(OLD_DATA_KEY, None)) > 0
    with app.app_context():
        after = stored()
        assert all(after[place].startswith(crypto.PREFIX) for place in before)
        assert {
            place: plain for place, plain in readable(OLD_DATA_KEY).items() if place in before
        } == before
    assert rewritten(deployment.rotate(OLD_DATA_KEY, None)) == 0


def test_a_second_rotation_rewrites_nothing(deployment: Deployment) -> None:
    populate(deployment.app(OLD_DATA_KEY))
    keys = (f"{NEW_DATA_KEY},{OLD_DATA_KEY}", LOOKUP_KEY)
    assert rewritten(deployment.rotate(*keys)) > 0
    app = deployment.app(*keys)
    with app.app_context():
        first = stored()
    assert rewritten(deployment.rotate(*keys)) == 0
    assert rewritten(deployment.rotate(NEW_DATA_KEY, LOOKUP_KEY)) == 0  # old keys removed
    with app.app_context():
        assert stored() == first  # not one ciphertext or hash rewritten


class Crash(Exception):
    """The rotating process dying between two batches."""


def test_a_rotation_stopped_half_way_finishes_on_a_rerun_and_ruta_serves_meanwhile(
    deployment: Deployment,
) -> None:
    populate(deployment.app(OLD_DATA_KEY))
    keys = (f"{NEW_DATA_KEY},{OLD_DATA_KEY}", LOOKUP_KEY)
    app = deployment.app(*keys)  # deployed everywhere before the rotation starts
    client = app.test_client()
    phone, newcomer = Phone(client), Phone(client, "+50688007788")
    with app.app_context():
        people, person = count(Contact), contact_id(PERSON)
        batches = 0

        def serve_then_crash(rows: int) -> None:
            nonlocal batches
            batches += 1
            # Between two batches people text and are answered, each as the contact they were.
            assert "Buscar servicios" in phone.text("HOLA")
            assert contact_id(PERSON) == person
            if batches == 2:
                assert "Buscar servicios" in newcomer.text("HOLA")
            if batches == 4:
                raise Crash

        with pytest.raises(Crash):
            keyrotation.rotate(crypto.current(), batch_size=2, progress=serve_then_crash)

        vault = crypto.current()
        with db.transaction() as session:
            ids = {c.phone: c.id for c in session.scalars(select(Contact))}
            rehashed = {
                c.phone
                for c in session.scalars(select(Contact))
                if c.phone_hash == vault.lookup_hash(c.phone)
            }
        waiting = set(ids) - rehashed
        assert rehashed and waiting  # stopped half-way
        assert len(ids) == people + 1 and "+50688007788" in rehashed  # new rows: the new key
        raw = stored()
        crypto.Vault(NEW_DATA_KEY).decrypt(raw[("contacts", "phone", ids["+50688007788"])])
        # Whichever hash a row has at this moment, its number finds it.
        for number in (min(rehashed), min(waiting)):
            Phone(client, number).text("HOLA")
            assert contact_id(number) == ids[number]
        assert count(Contact) == people + 1

    assert rewritten(deployment.rotate(*keys)) > 0  # the rerun finishes the job
    assert rewritten(deployment.rotate(*keys)) == 0

    app = deployment.app(NEW_DATA_KEY, LOOKUP_KEY)
    with app.app_context():
        readable(NEW_DATA_KEY)
        vault = crypto.current()
        with db.transaction() as session:
            for found in session.scalars(select(Contact)):
                assert found.phone_hash == vault.lookup_hash(found.phone)
                assert ids[found.phone] == found.id
        assert "Buscar servicios" in Phone(app.test_client()).text("HOLA")
        assert contact_id(PERSON) == person and count(Contact) == people + 1


def test_a_lookup_key_in_use_is_rotated_the_same_way(deployment: Deployment) -> None:
    populate(deployment.app(OLD_DATA_KEY))
    # Opting in keeps the data key: only the lookup hashes are rewritten.
    app = deployment.app(OLD_DATA_KEY)
    with app.app_context():
        before, people = stored(), count(Contact)
    assert rewritten(deployment.rotate(OLD_DATA_KEY, LOOKUP_KEY)) == people
    with app.app_context():
        after = stored()
    changed = {place for place in before if before[place] != after[place]}
    assert changed == {("contacts", "phone_hash", i) for i in lookup_hashes()}

    assert rewritten(deployment.rotate(OLD_DATA_KEY, f"{NEXT_LOOKUP_KEY},{LOOKUP_KEY}")) == people
    app = deployment.app(OLD_DATA_KEY, NEXT_LOOKUP_KEY)
    with app.app_context():
        vault = crypto.current()
        with db.transaction() as session:
            for found in session.scalars(select(Contact)):
                assert found.phone_hash == vault.lookup_hash(found.phone)
        person = contact_id(PERSON)
        assert "Buscar servicios" in Phone(app.test_client()).text("HOLA")
        assert contact_id(PERSON) == person and count(Contact) == people


def test_without_a_lookup_key_rotation_re_encrypts_keeps_the_hashes_and_says_so(
    deployment: Deployment,
) -> None:
    app = deployment.app(OLD_DATA_KEY)
    with app.app_context():
        with db.transaction() as session:
            for number in EXTRA_PEOPLE:
                contacts.lock_contact(session, number)
        hashes = lookup_hashes()
    result = deployment.rotate(f"{NEW_DATA_KEY},{OLD_DATA_KEY}", None)
    assert rewritten(result) >= len(EXTRA_PEOPLE)
    # The hash key still comes from the old data key: removing it would lose every person.
    assert "keep the last key of RUTA_DATA_KEY" in result.output
    app = deployment.app(f"{NEW_DATA_KEY},{OLD_DATA_KEY}")
    with app.app_context():
        readable(NEW_DATA_KEY)
        assert lookup_hashes() == hashes
        assert contact_id(EXTRA_PEOPLE[0]) in hashes


def test_two_contacts_for_one_number_keep_their_hash_and_everything_else_is_rotated(
    deployment: Deployment,
) -> None:
    app = deployment.app(OLD_DATA_KEY)
    with app.app_context():
        with db.transaction() as session:
            for number in EXTRA_PEOPLE:
                contacts.lock_contact(session, number)
        older = contact_id(EXTRA_PEOPLE[0])
    keys = (f"{NEW_DATA_KEY},{OLD_DATA_KEY}", LOOKUP_KEY)
    app = deployment.app(*keys)
    with app.app_context():
        # What a process on the new keys and one on the old keys creating the same number at the
        # same moment leave behind: two rows, one hash under each lookup key.
        with db.transaction() as session:
            twin = Contact(
                phone_hash=crypto.current().lookup_hash(EXTRA_PEOPLE[0]),
                phone=EXTRA_PEOPLE[0],
                opted_out=False,
            )
            session.add(twin)
        before = lookup_hashes()

    result = deployment.rotate(*keys)
    assert result.exit_code == 1, result.output
    assert "1 contact(s) share their number with another contact" in result.output
    with app.app_context():
        after = lookup_hashes()
        assert after[older] == before[older]  # the unique hash is its twin's: left as it was
        vault = crypto.current()
        with db.transaction() as session:
            for found in session.scalars(select(Contact).where(Contact.id != older)):
                assert found.phone_hash == vault.lookup_hash(found.phone)
        readable(NEW_DATA_KEY)  # every value re-encrypted all the same
        assert contact_id(EXTRA_PEOPLE[0]) == older  # the older row, with the history, is found
