"""Alembic environment: runs on a connection handed over by knnvocab, or on the URL in
KNNVOCAB_DATABASE_URL (via knnvocab's settings) when Alembic is run by hand."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from knnvocab.catalog.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from knnvocab.catalog.database import create_catalog_engine
    from knnvocab.config import Settings

    url = context.config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url
    engine = create_catalog_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run them online")
run_migrations_online()
