"""cache_versions: a counter per cached set of tables ("directory", "flows") that every write to
those tables bumps, by trigger, in the writing transaction; contacts.rating_asked_at: when the
person was last asked to rate closed help (a hint that spares the webhook a query of cases)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: What each web process caches, and the tables whose writes make it stale (as
#: ruta.directory.CACHED_TABLES; kept here so the migration never changes with the code).
CACHED = {
    "directory": (
        "municipalities",
        "categories",
        "organizations",
        "services",
        "locations",
        "service_at_locations",
        "phones",
        "schedules",
    ),
    "flows": ("flow_versions",),
}
FUNCTION = "ruta_bump_cache_version"
# The SQL below is made of this file's names only, never of input (hence the noqa: S608).


def _trigger(table: str, operation: str = "") -> str:
    return f"ruta_cache_{table}{'_' + operation.lower() if operation else ''}"


def upgrade() -> None:
    op.create_table(
        "cache_versions",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.bulk_insert(
        sa.table("cache_versions", sa.column("name", sa.String), sa.column("version", sa.Integer)),
        [{"name": name, "version": 1} for name in CACHED],
    )
    op.add_column(
        "contacts", sa.Column("rating_asked_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(
        "UPDATE contacts SET rating_asked_at = (SELECT max(cases.rating_requested_at) FROM cases"
        " WHERE cases.contact_id = contacts.id AND cases.status = 'closed'"
        " AND cases.rating IS NULL)"
    )
    if op.get_bind().dialect.name == "postgresql":
        # One statement-level trigger a table: a bulk import bumps the counter once.
        op.execute(
            f"CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"  # noqa: S608
            " UPDATE cache_versions SET version = version + 1 WHERE name = TG_ARGV[0];"
            " RETURN NULL; END $$"
        )
        for name, tables in CACHED.items():
            for table in tables:
                op.execute(
                    f"CREATE TRIGGER {_trigger(table)} AFTER INSERT OR UPDATE OR DELETE OR"
                    f" TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION"
                    f" {FUNCTION}('{name}')"
                )
    else:
        # SQLite has row-level triggers only, one per operation.
        for name, tables in CACHED.items():
            for table in tables:
                for operation in ("INSERT", "UPDATE", "DELETE"):
                    op.execute(
                        f"CREATE TRIGGER {_trigger(table, operation)} AFTER {operation} ON"  # noqa: S608
                        f" {table} BEGIN UPDATE cache_versions SET version = version + 1"
                        f" WHERE name = '{name}'; END"
                    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for tables in CACHED.values():
            for table in tables:
                op.execute(f"DROP TRIGGER {_trigger(table)} ON {table}")
        op.execute(f"DROP FUNCTION {FUNCTION}()")
    else:
        for tables in CACHED.values():
            for table in tables:
                for operation in ("INSERT", "UPDATE", "DELETE"):
                    op.execute(f"DROP TRIGGER {_trigger(table, operation)}")
    # Not a batch: on SQLite that rebuilds contacts, which rows of other tables refer to.
    op.drop_column("contacts", "rating_asked_at")
    op.drop_table("cache_versions")
