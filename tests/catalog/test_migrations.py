"""Alembic owns the schema: upgrade, downgrade and upgrade again on SQLite and Postgres, and
the models must describe exactly what the migrations create."""

from __future__ import annotations

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
from knnvocab.catalog.models import Base
from knnvocab.errors import CatalogError

TABLES = {
    "alembic_version",
    "audit_event",
    "class_count",
    "dataset",
    "domain",
    "encoder",
    "ingest_run",
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
