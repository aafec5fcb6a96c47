"""The Alembic migrations build exactly the schema the models describe, and go down and up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask
from sqlalchemy import create_engine, inspect

from ruta import migrate, taxonomy
from ruta.db import db
from ruta.models import Base


def differences(connection: Any) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


def test_the_migrated_database_matches_the_models(app: Flask) -> None:
    assert db.engine is not None
    with db.engine.connect() as connection:
        found = differences(connection)
    assert found == []
    assert migrate.current() == migrate.head()


def test_migrations_go_down_and_up_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    config = migrate.alembic_config(url)
    command.upgrade(config, "head")
    command.downgrade(config, "0001")
    engine = create_engine(url)
    try:
        indexes = {i["name"] for i in inspect(engine).get_indexes("broadcast_recipients")}
        assert "ix_broadcast_recipients_broadcast_id" in indexes
        assert "ix_broadcast_recipients_claim" not in indexes
        command.upgrade(config, "head")
        with engine.connect() as connection:
            assert differences(connection) == []
    finally:
        engine.dispose()


def test_the_taxonomy_migration_renames_old_codes_and_adds_the_standard_terms(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'taxonomy.db'}"
    config = migrate.alembic_config(url)
    command.upgrade(config, "0004")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            run = connection.exec_driver_sql
            run("INSERT INTO municipalities (id, code, name, country) VALUES (1, 'a', 'A', 'CR')")
            run(
                "INSERT INTO categories (id, code, names, position, sensitive)"
                " VALUES (1, 'documents', ?, 0, 0)",
                ('{"es": "Tramites (editado)"}',),
            )
            run("INSERT INTO organizations (id, name) VALUES (1, 'Municipalidad')")
            run(
                "INSERT INTO contacts (id, phone_hash, phone, opted_out, created_at, last_seen_at)"
                " VALUES (1, 'h', 'x', 0, '2026-01-01', '2026-01-01')"
            )
            run(
                "INSERT INTO focal_points (id, name, contact_id, organization_id, country,"
                " categories, languages, is_coordinator, active, created_at)"
                " VALUES (1, 'FP', 1, 1, 'CR', ?, '[]', 0, 1, '2026-01-01')",
                ('["health", "legal", "children", "documents"]',),
            )
            for ref, code in (("AAAAA", "legal"), ("BBBBB", "children"), ("CCCCC", "health")):
                run(
                    "INSERT INTO cases (reference, category_code, urgency, status, shared_phone,"
                    " contact_ok, chain_position, overdue, created_at)"
                    " VALUES (?, ?, 'standard', 'closed', 0, 0, 0, 0, '2026-01-01')",
                    (ref, code),
                )
            for chain_id, code in ((1, "legal"), (2, "children"), (3, "documents")):
                run(
                    "INSERT INTO routing_chains (id, municipality_id, category_code)"
                    " VALUES (?, 1, ?)",
                    (chain_id, code),
                )
            run("INSERT INTO routing_steps (chain_id, position, focal_point_id) VALUES (1, 0, 1)")
            run("INSERT INTO routing_steps (chain_id, position, focal_point_id) VALUES (3, 0, 1)")
        command.upgrade(config, "head")
        with engine.connect() as connection:
            run = connection.exec_driver_sql
            assert dict(run("SELECT reference, category_code FROM cases").all()) == {
                "AAAAA": "documents",
                "BBBBB": "family",
                "CCCCC": "health",
            }
            # The chain that received the old code's cases is the one kept.
            assert dict(run("SELECT category_code, id FROM routing_chains").all()) == {
                "documents": 1,
                "family": 2,
            }
            assert run("SELECT chain_id FROM routing_steps").scalars().all() == [1]
            assert run("SELECT categories FROM focal_points").scalar() == (
                '["health", "documents", "family"]'
            )
            rows = {
                code: (names, kind_of_help, listed)
                for code, names, kind_of_help, listed in run(
                    "SELECT code, names, kind_of_help, listed FROM categories"
                )
            }
            assert set(rows) == set(taxonomy.load().codes)
            assert rows["documents"] == ('{"es": "Tramites (editado)"}', 1, 1)  # names kept
            assert rows["other"][1:] == (1, 0)  # a kind of help, not a directory category
            assert rows["food"][1:] == (0, 1)
        command.downgrade(config, "0004")
        with engine.connect() as connection:
            codes = connection.exec_driver_sql("SELECT category_code FROM cases").scalars().all()
            assert sorted(codes) == ["children", "health", "legal"]
    finally:
        engine.dispose()
