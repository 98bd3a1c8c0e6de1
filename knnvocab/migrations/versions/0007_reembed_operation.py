"""Versions may have operation 'reembed': the version `knnvocab reembed` publishes when
it writes a domain's instances into another encoder's collection.

SQLite cannot alter a CHECK constraint, so there the table is rebuilt (Alembic batch
mode); knnvocab runs SQLite migrations with foreign keys off, as SQLite prescribes for a
table rebuild, and checks them before committing.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ck_vocab_version_operation"
_BEFORE = "operation IN ('ingest', 'retire', 'restore', 'purge', 'repair')"
_AFTER = "operation IN ('ingest', 'retire', 'restore', 'purge', 'repair', 'reembed')"


def _replace_check(condition: str) -> None:
    with op.batch_alter_table("vocab_version") as batch:
        batch.drop_constraint(_NAME, type_="check")
        batch.create_check_constraint(_NAME, condition)


def upgrade() -> None:
    _replace_check(_AFTER)


def downgrade() -> None:
    query = sa.text("SELECT count(*) FROM vocab_version WHERE operation = 'reembed'")
    reembeds = op.get_bind().scalar(query)
    if reembeds:
        # history is never rewritten to fit an older schema
        raise RuntimeError(
            f"cannot downgrade below revision 0007: the catalog holds {reembeds} reembed "
            "versions, which revision 0006 cannot represent"
        )
    _replace_check(_BEFORE)
