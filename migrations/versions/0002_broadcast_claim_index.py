"""broadcast ledger: one (broadcast_id, status, id) index for claims instead of two single ones

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 14:05:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("broadcast_recipients", schema=None) as batch_op:
        batch_op.create_index(
            "ix_broadcast_recipients_claim", ["broadcast_id", "status", "id"], unique=False
        )
        batch_op.drop_index(batch_op.f("ix_broadcast_recipients_broadcast_id"))
        batch_op.drop_index(batch_op.f("ix_broadcast_recipients_status"))


def downgrade() -> None:
    with op.batch_alter_table("broadcast_recipients", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_broadcast_recipients_status"), ["status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_broadcast_recipients_broadcast_id"), ["broadcast_id"], unique=False
        )
        batch_op.drop_index("ix_broadcast_recipients_claim")
