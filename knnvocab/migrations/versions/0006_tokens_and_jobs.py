"""The HTTP service's bearer tokens (``api_token``: only the SHA-256 of each secret) and
its long-running jobs (``service_job``: state in the catalog, so any worker can report a
job and a restarted service sees what it left).

Both are new tables, so SQLite needs no batch rebuild. A domain's tokens and jobs are
deleted with it. Going below this revision forgets every token and job; the audit log
keeps every ``token.*`` event.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# migrations never import the app's models: the schema is written out as it is
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def _domain_id(nullable: bool) -> sa.Column[int]:
    return sa.Column(
        "domain_id",
        sa.Integer(),
        sa.ForeignKey("domain.id", ondelete="CASCADE"),
        nullable=nullable,
    )


def upgrade() -> None:
    op.create_table(
        "api_token",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        _domain_id(nullable=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("expires_at", TS),
        sa.Column("revoked_at", TS),
        sa.Column("revoked_by", sa.String(200)),
        sa.CheckConstraint("scope IN ('query', 'write', 'admin')", name="ck_api_token_scope"),
    )
    op.create_table(
        "service_job",
        sa.Column("id", sa.String(32), primary_key=True),
        _domain_id(nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("request", JSON, nullable=False),
        sa.Column("progress", JSON, nullable=False),
        sa.Column("result", JSON),
        sa.Column("error", sa.Text()),
        sa.Column("version", sa.Integer()),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="ck_service_job_state",
        ),
    )
    op.create_index("ix_service_job_domain_id", "service_job", ["domain_id"])


def downgrade() -> None:
    op.drop_index("ix_service_job_domain_id", table_name="service_job")
    op.drop_table("service_job")
    op.drop_table("api_token")
