"""Revision 0007 (operation 'reembed'): the CHECK constraint admits it after the upgrade,
refuses it below, and a catalog holding reembed versions is not downgraded below 0007
(history is never rewritten to fit an older schema), on SQLite and Postgres."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from knnvocab.catalog.database import create_catalog_engine, current_revision, downgrade, upgrade


def _insert(engine: sa.Engine, operation: str) -> None:
    """A domain with one published version of ``operation`` (raw SQL: the schema of
    either revision)."""
    with engine.begin() as conn:
        encoder = conn.scalar(
            sa.text(
                "INSERT INTO encoder (fingerprint, model, source, weights_sha256, method, "
                "resolution, dim, collection, params, created_at) VALUES (:n, 'm', "
                "'untrained', 'w', 'maskclip', 64, 64, 'c', '{}', CURRENT_TIMESTAMP) RETURNING id"
            ),
            {"n": operation},
        )
        domain = conn.scalar(
            sa.text(
                "INSERT INTO domain (name, description, head_version, created_at, created_by) "
                "VALUES (:n, '', 0, CURRENT_TIMESTAMP, 'x') RETURNING id"
            ),
            {"n": operation},
        )
        conn.execute(
            sa.text(
                "INSERT INTO vocab_version (domain_id, number, state, operation, message, "
                "created_by, host, created_at, tool_version, encoder_id, params, summary, "
                "reproducible) VALUES (:d, 1, 'published', :op, '', 'x', 'h', "
                "CURRENT_TIMESTAMP, 't', :e, '{}', '{}', true)"
            ),
            {"d": domain, "e": encoder, "op": operation},
        )


def test_reembed_versions_need_revision_0007(catalog_url: str) -> None:
    engine = create_catalog_engine(catalog_url)
    upgrade(engine)
    downgrade(engine, "0006")
    with pytest.raises(sa.exc.IntegrityError):
        _insert(engine, "reembed")  # 0006's CHECK does not know the operation
    upgrade(engine)
    _insert(engine, "reembed")
    with pytest.raises(RuntimeError, match="holds 1 reembed versions"):
        downgrade(engine, "0006")
    assert current_revision(engine) == "0007"
    engine.dispose()
