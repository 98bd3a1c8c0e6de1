"""What the catalog records about its vector store: each collection's identity, and how
many points each domain's head shows there (what an unrecorded store must match)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from knnvocab.catalog.models import (
    ClassCount,
    Domain,
    Encoder,
    StoreIdentity,
    VocabVersion,
    utcnow,
)


def recorded_identity(session: Session, collection: str) -> StoreIdentity | None:
    return session.get(StoreIdentity, collection)


def record_identity(
    session: Session, collection: str, identity: str, backend: str, location: str, how: str
) -> StoreIdentity:
    """Record (or replace) the identity of ``collection``; ``how``: created | adopted."""
    row = session.get(StoreIdentity, collection)
    if row is None:
        row = StoreIdentity(collection=collection)
        session.add(row)
    row.identity, row.backend, row.location, row.how = identity, backend, location, how
    row.recorded_at = utcnow()
    session.flush()
    return row


def has_versions(session: Session, collection: str) -> bool:
    """Whether any version of any domain was written to ``collection``."""
    found = session.scalar(
        select(VocabVersion.id)
        .join(Encoder, VocabVersion.encoder_id == Encoder.id)
        .where(Encoder.collection == collection)
        .limit(1)
    )
    return found is not None


def head_counts(session: Session, collection: str) -> dict[str, tuple[int, int]]:
    """Per domain bound to ``collection``: (head version, instances visible at the head)."""
    rows = session.execute(
        select(Domain.name, Domain.head_version, func.coalesce(func.sum(ClassCount.instances), 0))
        .join(Encoder, Domain.encoder_id == Encoder.id)
        .outerjoin(
            VocabVersion,
            (VocabVersion.domain_id == Domain.id) & (VocabVersion.number == Domain.head_version),
        )
        .outerjoin(ClassCount, ClassCount.version_id == VocabVersion.id)
        .where(Encoder.collection == collection)
        .group_by(Domain.name, Domain.head_version)
    )
    return {name: (int(head), int(n)) for name, head, n in rows}
