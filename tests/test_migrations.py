"""The Alembic migrations build exactly the schema the models describe, and go down and up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask
from sqlalchemy import create_engine, inspect

from ruta import migrate
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
