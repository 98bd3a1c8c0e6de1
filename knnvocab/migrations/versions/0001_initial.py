"""Initial catalog: encoders, domains, datasets, vocabulary versions, classes, per-version
class counts, ingest runs and the append-only audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# migrations never import the app's models: the schema is written out as it was
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)

_AUDIT_GUARD_PG = """
CREATE FUNCTION knnvocab_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_event is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION knnvocab_audit_append_only();
"""
_AUDIT_GUARD_SQLITE = [
    """CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
       BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END""",
    """CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
       BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END""",
]


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer(), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "encoder",
        _id(),
        sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("model", sa.String(500), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("pretrained", sa.String(200)),
        sa.Column("checkpoint", sa.Text()),
        sa.Column("weights_sha256", sa.String(64), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("resolution", sa.Integer(), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("collection", sa.String(100), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "domain",
        _id(),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("encoder_id", sa.Integer(), sa.ForeignKey("encoder.id")),
        sa.Column("head_version", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("deleted_at", TS),
    )
    op.create_table(
        "dataset",
        _id(),
        sa.Column(
            "domain_id",
            sa.Integer(),
            sa.ForeignKey("domain.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("content_sha256", sa.String(64)),
        sa.Column("file_counts", JSON, nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("class_names", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_dataset_domain_name", "dataset", ["domain_id", "name"])
    _create_versions()
    _create_classes()
    _create_runs()
    _create_audit()


def _create_versions() -> None:
    op.create_table(
        "vocab_version",
        _id(),
        sa.Column(
            "domain_id",
            sa.Integer(),
            sa.ForeignKey("domain.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("tool_version", sa.String(32), nullable=False),
        sa.Column("encoder_id", sa.Integer(), sa.ForeignKey("encoder.id"), nullable=False),
        sa.Column("dataset_id", sa.Integer(), sa.ForeignKey("dataset.id")),
        sa.Column("params", JSON, nullable=False),
        sa.Column("summary", JSON, nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("reproducible", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("domain_id", "number", name="uq_vocab_version_number"),
        sa.CheckConstraint(
            "state IN ('pending', 'published', 'failed', 'rolled_back')",
            name="ck_vocab_version_state",
        ),
        sa.CheckConstraint(
            "operation IN ('ingest', 'retire', 'restore', 'purge')",
            name="ck_vocab_version_operation",
        ),
    )
    # the per-domain write lock, enforced by the database itself
    op.create_index(
        "uq_vocab_version_one_pending",
        "vocab_version",
        ["domain_id"],
        unique=True,
        postgresql_where=sa.text("state = 'pending'"),
        sqlite_where=sa.text("state = 'pending'"),
    )


def _create_classes() -> None:
    op.create_table(
        "vocab_class",
        _id(),
        sa.Column(
            "domain_id",
            sa.Integer(),
            sa.ForeignKey("domain.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("class_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prompts", JSON, nullable=False),
        sa.Column("added_in", sa.Integer(), nullable=False),
        sa.Column("removed_in", sa.Integer()),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("domain_id", "class_id", name="uq_vocab_class_id"),
        sa.UniqueConstraint("domain_id", "name", name="uq_vocab_class_name"),
    )
    op.create_table(
        "class_count",
        sa.Column(
            "version_id",
            sa.Integer(),
            sa.ForeignKey("vocab_version.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "class_pk",
            sa.Integer(),
            sa.ForeignKey("vocab_class.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("live", sa.Boolean(), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
    )


def _create_runs() -> None:
    op.create_table(
        "ingest_run",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "version_id",
            sa.Integer(),
            sa.ForeignKey("vocab_version.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column(
            "dataset_id",
            sa.Integer(),
            sa.ForeignKey("dataset.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("encoder_id", sa.Integer(), sa.ForeignKey("encoder.id"), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("tool_version", sa.String(32), nullable=False),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=False),
        sa.Column("ended_at", TS),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("images_total", sa.Integer(), nullable=False),
        sa.Column("images_done", sa.Integer(), nullable=False),
        sa.Column("instances_done", sa.Integer(), nullable=False),
        sa.Column("instances_skipped", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'interrupted')",
            name="ck_ingest_run_status",
        ),
    )


def _create_audit() -> None:
    op.create_table(
        "audit_event",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("at", TS, nullable=False, index=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("domain", sa.String(64), index=True),
        sa.Column("version", sa.Integer()),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("detail", JSON, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_AUDIT_GUARD_PG)
    else:
        for statement in _AUDIT_GUARD_SQLITE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event")
        op.execute("DROP FUNCTION IF EXISTS knnvocab_audit_append_only()")
    for table in (
        "audit_event",
        "ingest_run",
        "class_count",
        "vocab_class",
        "vocab_version",
        "dataset",
        "domain",
        "encoder",
    ):
        op.drop_table(table)
