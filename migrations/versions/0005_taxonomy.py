"""taxonomy: one vocabulary for kinds of help and directory categories

Adds ``categories.kind_of_help`` and ``categories.listed``, inserts the standard terms a database
lacks, and renames the old kind-of-help codes (legal -> documents, children -> family) in cases,
routing chains and focal points' categories.

The terms are copied here as they stood in ruta/taxonomy.yaml for this revision, so the migration
does the same whatever the file says later. Names of categories already in the table are left as
they are (the admin may have edited them).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RENAMES = {"legal": "documents", "children": "family"}

# code, es, en, kind_of_help, listed, sensitive
TERMS = (
    ("health", "Salud", "Health", True, True, False),
    ("documents", "Documentos y tramites", "Documents and procedures", True, True, False),
    ("shelter", "Albergue", "Shelter", True, True, False),
    ("food", "Alimentacion", "Food", False, True, False),
    ("work", "Empleo", "Work", True, True, False),
    ("education", "Educacion", "Education", True, True, False),
    ("wellbeing", "Apoyo emocional", "Emotional support", False, True, True),
    ("family", "Niñez y familia", "Children and families", True, True, True),
    ("safety", "Seguridad personal", "Personal safety", True, False, True),
    ("women", "Apoyo para mujeres", "Women's support", True, False, True),
    ("other", "Otro apoyo", "Other support", True, False, False),
)

categories = sa.table(
    "categories",
    sa.column("id", sa.Integer),
    sa.column("code", sa.String),
    sa.column("names", sa.JSON),
    sa.column("position", sa.Integer),
    sa.column("sensitive", sa.Boolean),
    sa.column("kind_of_help", sa.Boolean),
    sa.column("listed", sa.Boolean),
)
cases = sa.table("cases", sa.column("category_code", sa.String))
chains = sa.table(
    "routing_chains",
    sa.column("id", sa.Integer),
    sa.column("municipality_id", sa.Integer),
    sa.column("category_code", sa.String),
)
steps = sa.table("routing_steps", sa.column("chain_id", sa.Integer))
focal_points = sa.table(
    "focal_points", sa.column("id", sa.Integer), sa.column("categories", sa.JSON)
)


def _rename(mapping: dict[str, str]) -> None:
    connection = op.get_bind()
    for old, new in mapping.items():
        connection.execute(
            cases.update().where(cases.c.category_code == old).values(category_code=new)
        )
        # A chain already keyed by the new code was never reached (no flow offered that code):
        # the chain that received the old code's cases is the one in use, so it takes its place.
        for chain_id, place in connection.execute(
            sa.select(chains.c.id, chains.c.municipality_id).where(chains.c.category_code == old)
        ).all():
            unused = connection.scalar(
                sa.select(chains.c.id).where(
                    chains.c.municipality_id == place, chains.c.category_code == new
                )
            )
            if unused is not None:
                connection.execute(steps.delete().where(steps.c.chain_id == unused))
                connection.execute(chains.delete().where(chains.c.id == unused))
            connection.execute(
                chains.update().where(chains.c.id == chain_id).values(category_code=new)
            )
    for fp_id, kinds in connection.execute(
        sa.select(focal_points.c.id, focal_points.c.categories)
    ).all():
        renamed = list(dict.fromkeys(mapping.get(k, k) for k in kinds or []))
        if renamed != (kinds or []):
            connection.execute(
                focal_points.update().where(focal_points.c.id == fp_id).values(categories=renamed)
            )


def upgrade() -> None:
    with op.batch_alter_table("categories") as batch:
        batch.add_column(
            sa.Column("kind_of_help", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(
            sa.Column("listed", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    connection = op.get_bind()
    existing = set(connection.scalars(sa.select(categories.c.code)))
    last = connection.scalar(sa.select(sa.func.max(categories.c.position)))
    position = -1 if last is None else int(last)
    for code, es, en, kind_of_help, listed, sensitive in TERMS:
        if code in existing:
            connection.execute(
                categories.update()
                .where(categories.c.code == code)
                .values(kind_of_help=kind_of_help, listed=listed)
            )
            continue
        position += 1
        connection.execute(
            categories.insert().values(
                code=code,
                names={"es": es, "en": en},
                position=position,
                sensitive=sensitive,
                kind_of_help=kind_of_help,
                listed=listed,
            )
        )
    _rename(RENAMES)


def downgrade() -> None:
    # The terms added stay: deleting a category could take services or history with it.
    _rename({new: old for old, new in RENAMES.items()})
    with op.batch_alter_table("categories") as batch:
        batch.drop_column("listed")
        batch.drop_column("kind_of_help")
