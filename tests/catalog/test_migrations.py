"""Alembic owns the schema: upgrade, downgrade and upgrade again on SQLite and Postgres, and
the models must describe exactly what the migrations create."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from knnvocab.catalog.database import (
    Catalog,
    create_catalog_engine,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from knnvocab.catalog.domains import get_domain
from knnvocab.catalog.models import Base
from knnvocab.catalog.versions import begin_version
from knnvocab.embed.spec import EncoderSpec
from knnvocab.errors import CatalogError, DomainBusyError
from knnvocab.history import version_log
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.lifecycle import doctor, retire
from knnvocab.store.adoption import adopt_store
from knnvocab.workspace import Workspace

TABLES = {
    "alembic_version",
    "api_token",
    "audit_event",
    "class_count",
    "dataset",
    "domain",
    "encoder",
    "ingest_run",
    "service_job",
    "store_identity",
    "vocab_class",
    "vocab_version",
}


def test_upgrade_downgrade_upgrade(catalog_url: str) -> None:
    engine = create_catalog_engine(catalog_url)
    upgrade(engine)
    assert set(sa.inspect(engine).get_table_names()) == TABLES
    assert current_revision(engine) == head_revision()
    downgrade(engine, "base")
    assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
    assert current_revision(engine) is None
    upgrade(engine)
    assert set(sa.inspect(engine).get_table_names()) == TABLES
    engine.dispose()


def test_models_match_the_migrations(catalog_url: str) -> None:
    engine = create_catalog_engine(catalog_url)
    upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


def test_catalog_refuses_an_old_schema_without_auto_migrate(catalog_url: str) -> None:
    engine = create_catalog_engine(catalog_url)
    downgrade(engine, "base")
    engine.dispose()
    with pytest.raises(CatalogError, match="knnvocab db upgrade"):
        Catalog(catalog_url, auto_migrate=False)
    Catalog(catalog_url).close()  # auto-migrates


def test_unreachable_postgres_is_a_clear_error() -> None:
    with pytest.raises(CatalogError, match="cannot open catalog postgresql"):
        Catalog("postgresql+psycopg://nobody:secret@127.0.0.1:1/none")


def _rows(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.scalar(sa.text(f"SELECT count(*) FROM {t}")) or 0 for t in TABLES}


def test_migrations_keep_the_data(
    ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path
) -> None:
    """Down to 0001 and back up (SQLite rebuilds vocab_version both ways): every row of
    every table survives, nothing cascades, and the database still enforces its rules.
    The one exception is 0004's table of store identities: going below it forgets them,
    so the store (which keeps its identity) is refused until `store adopt` records it."""
    ingest(ws, "k", labelme_voc, IngestOptions("voc"), tiny_model, actor="tester")
    retire(ws, "k", "person", actor="tester")
    engine = ws.catalog.engine
    before = _rows(engine)
    assert before["class_count"] > 0 and before["vocab_version"] == 2
    downgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    upgrade(engine)
    after = _rows(engine)
    assert after.pop("store_identity") == 0 and before.pop("store_identity") == 1
    assert after == before
    ws.store.close()  # one process holds a shard at a time
    with Workspace(ws.settings) as again:
        assert [f.kind for f in doctor(again, actor="tester").findings] == ["store-unadopted"]
        (report,) = adopt_store(again, "tester", apply=True)
        assert report.state == "foreign-identity" and report.survey and report.survey.matches
        assert doctor(again, actor="tester").ok
    assert _rows(engine)["store_identity"] == 1
    schema = sa.inspect(engine)
    checks = {c["name"] for c in schema.get_check_constraints("vocab_version")}
    assert checks == {"ck_vocab_version_state", "ck_vocab_version_operation"}
    indexes = schema.get_indexes("vocab_version")
    (lock,) = [i for i in indexes if i["name"] == "uq_vocab_version_one_pending"]
    assert lock["unique"]
    where = lock["dialect_options"][f"{engine.dialect.name}_where"]
    assert "pending" in str(where)  # the write lock is still a partial unique index
    assert [r.operation for r in version_log(ws, "k")] == ["ingest", "retire"]
    with ws.catalog.session() as s:
        domain = get_domain(s, "k")
        assert domain.encoder is not None
        begin_version(s, domain, "repair", domain.encoder, "x")
    with ws.catalog.session() as s, pytest.raises(DomainBusyError):
        domain = get_domain(s, "k")
        assert domain.encoder is not None
        begin_version(s, domain, "ingest", domain.encoder, "x")  # the pending lock holds
    with pytest.raises(RuntimeError, match="holds 1 repair versions"):
        downgrade(engine, "0001")
    assert current_revision(engine) == head_revision() and _rows(engine)["vocab_version"] == 3
