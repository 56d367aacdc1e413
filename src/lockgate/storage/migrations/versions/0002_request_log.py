"""Request log: how each request was served (fallback, hedging, cache, ttft, error type),
optional redacted bodies, and an index for paging and retention by time.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 20:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("spend_ledger", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("fallback", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("hedged", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("cache_status", sa.String(length=16), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("ttft_ms", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("error_type", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("bodies", sa.Text(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_spend_ledger_created_at_id"), ["created_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("spend_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spend_ledger_created_at_id"))
        batch_op.drop_column("bodies")
        batch_op.drop_column("error_type")
        batch_op.drop_column("ttft_ms")
        batch_op.drop_column("cache_status")
        batch_op.drop_column("hedged")
        batch_op.drop_column("fallback")
