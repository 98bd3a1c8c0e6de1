"""A domain with a real history to move: ingest, a second ingest, retire, restore, purge
(the three labelme photos and the VOC sample, tiny real model, embedded store), and a
fresh deployment to import it into, on the same catalog backend."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from knnvocab.config import Settings
from knnvocab.embed.spec import EncoderSpec
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.lifecycle import audit_log, purge, restore, retire
from knnvocab.portable import export_domain
from knnvocab.workspace import Workspace
from tests.conftest import template_copy

#: the source domain's versions: 1 ingest, 2 ingest, 3 retire, 4 restore, 5 purge
VERSIONS = (1, 2, 3, 4, 5)


def build_history(ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path) -> None:
    """Domain ``k`` with five published versions. The two ingests read different photos
    (no instance is stored twice): an exact search orders neighbours of equal score by
    where the store keeps them, which an import cannot replay (see test_roundtrip)."""
    first = ("2011_000003", "2011_000006")
    options = IngestOptions("voc", dataset_name="photos", min_area=1, only_keys=first)
    ingest(ws, "k", labelme_voc, options, tiny_model, actor="alice")
    options = IngestOptions("voc", dataset_name="photos", min_area=1)
    ingest(ws, "k", labelme_voc, options, actor="bob")  # adds the third photo
    retire(ws, "k", "person", "consent withdrawn", actor="alice")
    restore(ws, "k", "person", "consent given", actor="alice")
    purge(ws, "k", class_name="bus", message="request #42", actor="carol")


def run_cli(settings: Settings, *args: str | Path) -> Result:
    """The real command, in-process, against ``settings``."""
    from knnvocab.cli import app

    env = {
        "KNNVOCAB_HOME": str(settings.home),
        "KNNVOCAB_DATABASE_URL": settings.database_url,
        "KNNVOCAB_USER": settings.user,
        "KNNVOCAB_QDRANT_URL": "",
    }
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def one_error_line(result: Result, *parts: str) -> None:
    """Exit code 1, no traceback, one ``error:`` line holding every part."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for part in parts:
        assert part in errors[0], (part, errors[0])


@pytest.fixture
def source(
    settings: Settings, tiny_model: EncoderSpec, labelme_voc: Path, tmp_path: Path
) -> Iterator[Settings]:
    """The source deployment's settings, with domain ``k`` built (and its store closed)."""
    with Workspace(settings) as ws:
        build_history(ws, tiny_model, labelme_voc)
    yield settings


@pytest.fixture
def archive(source: Settings, tmp_path: Path) -> Path:
    path = tmp_path / "k.knnvocab.tar"
    with Workspace(source) as ws:
        export_domain(ws, "k", path)
    return path


@pytest.fixture
def target(source: Settings, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """A fresh deployment on the source's catalog backend (a new SQLite file or a new
    Postgres database) with its own embedded store."""
    home = tmp_path / "target"
    if source.database_url.startswith("sqlite"):
        yield Settings(home, f"sqlite:///{tmp_path / 'target.sqlite3'}", user="importer")
        return
    template = request.getfixturevalue("pg_template")  # migrated already
    with template_copy(template, "knnvocab_t_") as url:
        yield Settings(home, url, user="importer")


def audit_rows(settings: Settings, domain: str) -> list[dict[str, Any]]:
    """The domain's audit events as JSON, without the row id and the domain name."""
    with Workspace(settings) as ws:
        rows = [r.to_json() for r in audit_log(ws, domain)]
    for r in rows:
        r.pop("id", None)
        r.pop("domain", None)
    return json.loads(json.dumps(rows, sort_keys=True))  # type: ignore[no-any-return]


def fresh(root: Path, user: str = "importer") -> Settings:
    root.mkdir(parents=True, exist_ok=True)
    return Settings(root / "home", f"sqlite:///{root / 'catalog.sqlite3'}", user=user)


@pytest.fixture(scope="module")
def small(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: EncoderSpec, labelme_voc: Path
) -> tuple[Settings, Path]:
    """Domain ``k`` (ingest, retire) in its own deployment, and its archive."""
    root = tmp_path_factory.mktemp("small")
    settings = fresh(root / "source", user="alice")
    archive = root / "k.tar"
    with Workspace(settings) as ws:
        options = IngestOptions("voc", dataset_name="photos", min_area=1)
        ingest(ws, "k", labelme_voc, options, tiny_model, actor="alice")
        retire(ws, "k", "person", "consent withdrawn", actor="alice")
        export_domain(ws, "k", archive)
    return settings, archive
