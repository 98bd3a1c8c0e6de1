"""The identity of each vector collection the catalog writes to (``store_identity``): a
store whose collection is missing or carries another identity is refused before anything
is changed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "store_identity",
        sa.Column("collection", sa.String(100), primary_key=True),
        sa.Column("identity", sa.String(36), nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("how", sa.String(16), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("store_identity")
