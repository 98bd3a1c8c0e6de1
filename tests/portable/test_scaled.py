"""An import into the scaled code path (Postgres catalog, the Qdrant server API through
qdrant-client's in-process stand-in): the same library calls, the same result."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from knnvocab.config import Settings
from knnvocab.history import version_log
from knnvocab.lifecycle import doctor
from knnvocab.portable import export_domain, import_domain
from knnvocab.workspace import Workspace
from tests.portable.conftest import audit_rows


def test_import_into_a_scaled_deployment(
    small: tuple[Settings, Path], pg_url: str, tmp_path: Path
) -> None:
    source, archive = small
    scaled = Settings(tmp_path / "home", pg_url, qdrant_url=":memory:", user="importer")
    with Workspace(scaled) as ws:  # one process: the in-memory store lives as long as it
        done = import_domain(ws, archive, actor="importer")
        assert not done.already and sum(done.points.values()) > 0
        assert doctor(ws).ok
        imported = [r.to_json() for r in version_log(ws, "k")]
        assert import_domain(ws, archive, actor="importer").already
        # and out again: the same catalog history
        export_domain(ws, "k", tmp_path / "again.tar")
        assert import_domain(ws, tmp_path / "again.tar", actor="importer", name="k2").points
        assert [r.to_json() for r in version_log(ws, "k2")] == imported
    with Workspace(source) as ws:
        assert imported == [r.to_json() for r in version_log(ws, "k")]
    assert audit_rows(replace(scaled, qdrant_url=None), "k")[:-1] == audit_rows(source, "k")
