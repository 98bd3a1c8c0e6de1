"""Versions may have operation 'repair': the version `doctor --repair` publishes after
points were lost from the store, whose counts are the store's.

SQLite cannot alter a CHECK constraint, so there the table is rebuilt (Alembic batch
mode); knnvocab runs SQLite migrations with foreign keys off, as SQLite prescribes for a
table rebuild, and checks them before committing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ck_vocab_version_operation"
_BEFORE = "operation IN ('ingest', 'retire', 'restore', 'purge')"
_AFTER = "operation IN ('ingest', 'retire', 'restore', 'purge', 'repair')"


def _replace_check(condition: str) -> None:
    with op.batch_alter_table("vocab_version") as batch:
        batch.drop_constraint(_NAME, type_="check")
        batch.create_check_constraint(_NAME, condition)


def upgrade() -> None:
    _replace_check(_AFTER)


def downgrade() -> None:
    query = sa.text("SELECT count(*) FROM vocab_version WHERE operation = 'repair'")
    repairs = op.get_bind().scalar(query)
    if repairs:
        # history is never rewritten to fit an older schema
        raise RuntimeError(
            f"cannot downgrade below revision 0002: the catalog holds {repairs} repair "
            "versions, which revision 0001 cannot represent"
        )
    _replace_check(_BEFORE)
