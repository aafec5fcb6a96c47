"""route before promise: the organisations a consent covered, and requests nobody could receive

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 23:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("consent_scope", sa.JSON(), nullable=True))
    op.create_table(
        "unrouted_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("municipality_id", sa.Integer(), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("category_code", sa.String(length=32), nullable=False),
        sa.Column("urgency", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["municipality_id"], ["municipalities.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("unrouted_requests", schema=None) as batch_op:
        batch_op.create_index("ix_unrouted_requests_municipality_id", ["municipality_id"])
        batch_op.create_index("ix_unrouted_requests_created_at", ["created_at"])


def downgrade() -> None:
    with op.batch_alter_table("unrouted_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_unrouted_requests_created_at")
        batch_op.drop_index("ix_unrouted_requests_municipality_id")
    op.drop_table("unrouted_requests")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("consent_scope")
