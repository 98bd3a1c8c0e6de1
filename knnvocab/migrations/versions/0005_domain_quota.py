"""A domain may have a quota: the most instances readers of its head may see
(``domain.max_instances``, NULL: none). Qdrant has no per-tenant quota, so the catalog
keeps it and an ingest checks it before embedding anything.

SQLite cannot add a CHECK constraint to a table, so there the table is rebuilt (Alembic
batch mode, foreign keys off while knnvocab migrates, as in 0002). Going below this
revision forgets the quotas (the older code does not enforce them); the audit log keeps
every ``domain.quota`` event.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHECK = "ck_domain_max_instances"


def upgrade() -> None:
    with op.batch_alter_table("domain") as batch:
        batch.add_column(sa.Column("max_instances", sa.Integer(), nullable=True))
        batch.create_check_constraint(_CHECK, "max_instances >= 1")


def downgrade() -> None:
    with op.batch_alter_table("domain") as batch:
        batch.drop_constraint(_CHECK, type_="check")
        batch.drop_column("max_instances")
