"""messages.about_case_id: a focal point's INFO reply names the case whose person it describes,
so erasure and the anonymising of closed cases blank it

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("about_case_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_messages_about_case_id"), ["about_case_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_messages_about_case_id_cases"),
            "cases",
            ["about_case_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_messages_about_case_id_cases"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_messages_about_case_id"))
        batch_op.drop_column("about_case_id")
