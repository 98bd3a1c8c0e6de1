"""What the database itself enforces: one pending version per domain, an append-only log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from knnvocab.catalog import audit
from knnvocab.catalog.database import Catalog
from knnvocab.catalog.domains import create_domain, ensure_encoder
from knnvocab.catalog.models import AuditEvent, VocabVersion
from knnvocab.catalog.versions import begin_version
from knnvocab.embed.spec import EncoderInfo, EncoderSpec
from knnvocab.errors import DomainBusyError

INFO = EncoderInfo(
    spec=EncoderSpec("ViT-B-16", untrained=True),
    model_name="ViT-B-16",
    model_config_sha256="0" * 64,
    weights_sha256="1" * 64,
    dim=512,
    resolution=224,
    patch_size=16,
)


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    c = Catalog(catalog_url)
    yield c
    c.close()


def test_second_pending_version_is_refused_by_the_library(catalog: Catalog) -> None:
    with catalog.session() as s:
        domain = create_domain(s, "d1", "alice")
        enc = ensure_encoder(s, INFO)
        v = begin_version(s, domain, "ingest", enc, "alice")
        assert (v.number, v.state) == (1, "pending")
    with catalog.session() as s, pytest.raises(DomainBusyError, match="pending version 1"):
        begin_version(s, s.merge(domain), "ingest", s.merge(enc), "bob")


def test_second_pending_version_is_refused_by_the_database(catalog: Catalog) -> None:
    """Bypassing the library's check (a race): the unique partial index still refuses."""
    with catalog.session() as s:
        domain = create_domain(s, "d1", "alice")
        enc = ensure_encoder(s, INFO)
        domain_id, enc_id = domain.id, enc.id
    rows = [
        VocabVersion(
            domain_id=domain_id,
            number=n,
            state="pending",
            operation="ingest",
            created_by="x",
            host="h",
            tool_version="t",
            encoder_id=enc_id,
            params={},
            summary={},
        )
        for n in (1, 2)
    ]
    with catalog.session() as s:
        s.add(rows[0])
    with pytest.raises(IntegrityError), catalog.session() as s:
        s.add(rows[1])
    # a published version next to the pending one is fine
    with catalog.session() as s:
        s.add(
            VocabVersion(
                domain_id=domain_id,
                number=3,
                state="published",
                operation="ingest",
                created_by="x",
                host="h",
                tool_version="t",
                encoder_id=enc_id,
                params={},
                summary={},
            )
        )


def test_audit_log_is_append_only(catalog: Catalog) -> None:
    with catalog.session() as s:
        event = audit.record(s, "test.event", "alice", domain="d1", detail={"k": 1})
        event_id = event.id
    for statement in (
        sa.update(AuditEvent).where(AuditEvent.id == event_id).values(actor="mallory"),
        sa.delete(AuditEvent).where(AuditEvent.id == event_id),
    ):
        with pytest.raises(DBAPIError, match="append-only"), catalog.session() as s:
            s.execute(statement)
    with catalog.session() as s:
        events = audit.events(s, domain="d1")
        assert [(e.action, e.actor, e.detail) for e in events] == [
            ("test.event", "alice", {"k": 1})
        ]
        assert events[0].at.tzinfo is not None
