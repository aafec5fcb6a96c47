"""Schema migrations through Alembic, configured in code from the app's DATABASE_URL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ruta.db import db

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _url() -> str:
    assert db.engine is not None, "database not initialised"
    return db.engine.url.render_as_string(hide_password=False)


def upgrade(revision: str = "head") -> None:
    command.upgrade(alembic_config(_url()), revision)


def head() -> str | None:
    return ScriptDirectory.from_config(alembic_config(_url())).get_current_head()


def current() -> str | None:
    assert db.engine is not None
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def pending_revision() -> str | None:
    """The head revision when the database is behind it, else None."""
    target = head()
    return None if current() == target else target
