"""contacts.erase_requested_at: a person's BORRAR, carried out by the sweeper

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 14:35:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erase_requested_at", sa.DateTime(timezone=True)))
        batch_op.create_index(
            batch_op.f("ix_contacts_erase_requested_at"), ["erase_requested_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_erase_requested_at"))
        batch_op.drop_column("erase_requested_at")
