"""questions.reference: a short reference ("Q7K2P") the person is told when they ask and the
answer names; questions already stored get one drawn here

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 10:00:00
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: As ruta.questions (kept here so the migration never changes with the code).
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def upgrade() -> None:
    with op.batch_alter_table("questions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reference", sa.String(length=8), nullable=True))
    connection = op.get_bind()
    taken: set[str] = set()
    for (question_id,) in connection.execute(sa.text("SELECT id FROM questions")):
        reference = ""
        while not reference or reference in taken:
            reference = "Q" + "".join(secrets.choice(ALPHABET) for _ in range(4))
        taken.add(reference)
        connection.execute(
            sa.text("UPDATE questions SET reference = :r WHERE id = :i"),
            {"r": reference, "i": question_id},
        )
    with op.batch_alter_table("questions", schema=None) as batch_op:
        batch_op.alter_column("reference", existing_type=sa.String(length=8), nullable=False)
        batch_op.create_unique_constraint("uq_questions_reference", ["reference"])


def downgrade() -> None:
    with op.batch_alter_table("questions", schema=None) as batch_op:
        batch_op.drop_constraint("uq_questions_reference", type_="unique")
        batch_op.drop_column("reference")
