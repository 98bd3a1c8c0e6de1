"""The catalog schema: typed SQLAlchemy 2 models on one DeclarativeBase.

Alembic (``knnvocab/migrations/``) owns the schema; these models must match its head revision
(a test compares them). Times are timezone-aware UTC.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from knnvocab.embed.prompts import DEFAULT_NAME_RULE, DEFAULT_TEMPLATES

VERSION_STATES = ("pending", "published", "failed", "rolled_back")
OPERATIONS = ("ingest", "retire", "restore", "purge", "repair", "reembed")
RUN_STATES = ("running", "succeeded", "failed", "interrupted")
TOKEN_SCOPES = ("query", "write", "admin")
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, returns aware datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
        datetime: UTCDateTime,
    }


class Encoder(Base):
    """An image/text encoder, identified by its fingerprint (one vector collection each)."""

    __tablename__ = "encoder"

    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    model: Mapped[str] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(16))  # hub | checkpoint | local-dir | untrained
    pretrained: Mapped[str | None] = mapped_column(String(200))
    checkpoint: Mapped[str | None] = mapped_column(Text)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(64))
    resolution: Mapped[int] = mapped_column(Integer)
    dim: Mapped[int] = mapped_column(Integer)
    collection: Mapped[str] = mapped_column(String(100))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Domain(Base):
    """A tenant: its own vocabulary history and its own points."""

    __tablename__ = "domain"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    encoder_id: Mapped[int | None] = mapped_column(ForeignKey("encoder.id"))
    head_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    deleted_at: Mapped[datetime | None] = mapped_column()
    # the most instances readers of the head may see (None: no quota); revision 0005
    max_instances: Mapped[int | None] = mapped_column(Integer)

    encoder: Mapped[Encoder | None] = relationship(lazy="joined")

    __table_args__ = (CheckConstraint("max_instances >= 1", name="ck_domain_max_instances"),)


class Dataset(Base):
    """A labelled dataset as it was read by one ingest (what, where, which bytes)."""

    __tablename__ = "dataset"

    id: Mapped[int] = mapped_column(primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(Text)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    file_counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    class_names: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_dataset_domain_name", "domain_id", "name"),)


class VocabVersion(Base):
    """One version of a domain's vocabulary; immutable once published."""

    __tablename__ = "vocab_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    operation: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    tool_version: Mapped[str] = mapped_column(String(32))
    encoder_id: Mapped[int] = mapped_column(ForeignKey("encoder.id"))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("dataset.id"))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    reproducible: Mapped[bool] = mapped_column(Boolean, default=True)
    # how this version makes zero-shot prompts (embed/prompts.py PromptSet); the server
    # defaults are what every version used before they were recorded (revision 0003)
    templates: Mapped[list[Any]] = mapped_column(server_default=json.dumps(list(DEFAULT_TEMPLATES)))
    prompt_rule: Mapped[str] = mapped_column(String(32), server_default=DEFAULT_NAME_RULE)

    dataset: Mapped[Dataset | None] = relationship(lazy="joined")
    encoder: Mapped[Encoder] = relationship(lazy="joined")

    __table_args__ = (
        UniqueConstraint("domain_id", "number", name="uq_vocab_version_number"),
        # the write lock: at most one pending version per domain, held by the database
        Index(
            "uq_vocab_version_one_pending",
            "domain_id",
            unique=True,
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        CheckConstraint(
            "state IN ('pending', 'published', 'failed', 'rolled_back')",
            name="ck_vocab_version_state",
        ),
        CheckConstraint(
            "operation IN ('ingest', 'retire', 'restore', 'purge', 'repair', 'reembed')",
            name="ck_vocab_version_operation",
        ),
    )


class IngestRun(Base):
    """One process working on a pending ingest version (a resume is a new run)."""

    __tablename__ = "ingest_run"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("vocab_version.id", ondelete="CASCADE"), index=True
    )
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id", ondelete="CASCADE"))
    encoder_id: Mapped[int] = mapped_column(ForeignKey("encoder.id"))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tool_version: Mapped[str] = mapped_column(String(32))
    user: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="running")
    images_total: Mapped[int] = mapped_column(Integer, default=0)
    images_done: Mapped[int] = mapped_column(Integer, default=0)
    instances_done: Mapped[int] = mapped_column(Integer, default=0)
    instances_skipped: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'interrupted')",
            name="ck_ingest_run_status",
        ),
    )


class VocabClass(Base):
    """A class of a domain; its integer ``class_id`` is stable for the domain's lifetime."""

    __tablename__ = "vocab_class"

    id: Mapped[int] = mapped_column(primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id", ondelete="CASCADE"))
    class_id: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    prompts: Mapped[list[Any]] = mapped_column(default=list)
    added_in: Mapped[int] = mapped_column(Integer)
    removed_in: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("domain_id", "class_id", name="uq_vocab_class_id"),
        UniqueConstraint("domain_id", "name", name="uq_vocab_class_name"),
    )


class ClassCount(Base):
    """A class as it stood at one version: live or retired, and its instance counts."""

    __tablename__ = "class_count"

    version_id: Mapped[int] = mapped_column(
        ForeignKey("vocab_version.id", ondelete="CASCADE"), primary_key=True
    )
    class_pk: Mapped[int] = mapped_column(
        ForeignKey("vocab_class.id", ondelete="CASCADE"), primary_key=True
    )
    live: Mapped[bool] = mapped_column(Boolean)
    instances: Mapped[int] = mapped_column(Integer)
    added: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[int] = mapped_column(Integer, default=0)

    vocab_class: Mapped[VocabClass] = relationship(lazy="joined")


class AuditEvent(Base):
    """Append-only log of every change (a trigger refuses UPDATE and DELETE).

    ``domain`` is a name, not a foreign key, so the log outlives a deleted domain.
    """

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(200))
    domain: Mapped[str | None] = mapped_column(String(64), index=True)
    version: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class StoreIdentity(Base):
    """The identity of the vector collection this catalog writes to, recorded when the
    collection is created (or adopted): a store whose collection carries another identity,
    or none, is not this catalog's store and is refused before anything is changed."""

    __tablename__ = "store_identity"

    collection: Mapped[str] = mapped_column(String(100), primary_key=True)
    identity: Mapped[str] = mapped_column(String(36))
    backend: Mapped[str] = mapped_column(String(32))
    location: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    how: Mapped[str] = mapped_column(String(16))  # created | adopted


class ApiToken(Base):
    """A bearer token of the HTTP service. Only the SHA-256 of the secret is stored; the
    secret is shown once, when the token is created.

    ``domain_id`` NULL is a deployment token (all domains). A domain's tokens are deleted
    with it (never set to NULL, which would widen them to every domain). Revision 0006.
    """

    __tablename__ = "api_token"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    domain_id: Mapped[int | None] = mapped_column(ForeignKey("domain.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(16))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_by: Mapped[str | None] = mapped_column(String(200))

    domain: Mapped[Domain | None] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint("scope IN ('query', 'write', 'admin')", name="ck_api_token_scope"),
    )


class ServiceJob(Base):
    """A long-running job of the HTTP service (an ingest). Its state lives in the catalog,
    so any worker can report it and a restarted service sees what it left. Revision 0006.

    ``owner`` is the host and pid of the process running it; ``version`` the version
    number it took, once it took one.
    """

    __tablename__ = "service_job"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    actor: Mapped[str] = mapped_column(String(200))
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int | None] = mapped_column(Integer)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    owner: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    domain: Mapped[Domain] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint(
            "state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="ck_service_job_state",
        ),
    )
