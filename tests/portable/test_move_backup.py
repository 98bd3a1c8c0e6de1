"""`knnvocab domain move` (embedded → Postgres + the Qdrant server API, and back) and
`knnvocab backup create|restore`, verified by each deployment's answers; a kill -9 in the
middle, then the same command again, ends as an uninterrupted run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from knnvocab.cli import app
from knnvocab.config import Settings
from knnvocab.history import version_log
from knnvocab.lifecycle import doctor, domain_infos
from knnvocab.portable.verify import verify_same
from knnvocab.workspace import Workspace

pytestmark = pytest.mark.slow


@pytest.fixture
def catalog_url(tmp_path: Path) -> str:
    """The source is the embedded deployment (SQLite); the scaled target is Postgres."""
    return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        "KNNVOCAB_HOME": str(settings.home),
        "KNNVOCAB_DATABASE_URL": settings.database_url,
        "KNNVOCAB_QDRANT_URL": settings.qdrant_url or "",
        "KNNVOCAB_USER": "mover",
        **extra,
    }


def _cli(settings: Settings, *args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env=_env(settings))


def _process(
    settings: Settings, *args: str | Path, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), **_env(settings, **extra)}
    command = [sys.executable, "-m", "knnvocab", *[str(a) for a in args]]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _log(settings: Settings) -> list[dict[str, object]]:
    with Workspace(settings) as ws:
        return [
            {k: v for k, v in r.to_json().items() if k in ("number", "state", "counts")}
            for r in version_log(ws, "k")
        ]


def _consistent(settings: Settings) -> None:
    with Workspace(settings) as ws:
        report = doctor(ws, "k")
    assert report.ok, report.to_json()


@pytest.fixture
def scaled(pg_url: str, tmp_path: Path) -> Settings:
    """The scaled deployment: a Postgres catalog, and qdrant-client's local mode standing
    in for the Qdrant server's API (none runs here)."""
    return Settings(tmp_path / "scaled", pg_url, f"local:{tmp_path / 'qdrant'}", user="t")


def test_move_to_the_scaled_deployment_and_back(
    source: Settings, scaled: Settings, tmp_path: Path
) -> None:
    before = _log(source)
    args = ["--to-database", scaled.database_url, "--to-qdrant", scaled.qdrant_url]
    moved = _cli(source, "domain", "move", "k", *args)
    assert moved.exit_code == 0, moved.output
    assert "published versions verified on 3 images; source kept here" in moved.output
    assert _log(scaled) == before == _log(source)
    _consistent(scaled)
    again = _cli(source, "domain", "move", "k", *args)  # verified again, nothing written
    assert again.exit_code == 0 and "already there" in again.output, again.output

    home = tmp_path / "back"
    back_db = f"sqlite:///{home / 'catalog.sqlite3'}"
    back = _cli(
        scaled,
        "domain",
        "move",
        "--all",
        "--to-database",
        back_db,
        "--to-home",
        home,
        "--delete-source",
    )
    assert back.exit_code == 0, back.output
    assert "source deleted here" in back.output
    embedded = Settings(home, back_db, user="t")
    assert _log(embedded) == before
    with Workspace(source) as a, Workspace(embedded) as b:
        verify_same(a, b, "k")
    _consistent(embedded)
    with Workspace(scaled) as ws:
        assert domain_infos(ws) == []


def test_a_move_killed_mid_import_finishes_when_run_again(
    source: Settings, scaled: Settings
) -> None:
    args = [
        "domain",
        "move",
        "k",
        "--to-database",
        scaled.database_url,
        "--to-qdrant",
        scaled.qdrant_url,
    ]
    killed = _process(source, *args, KNNVOCAB_FAULT="import.after_points")
    assert killed.returncode == -9, killed.stderr
    again = _process(source, *args)
    assert again.returncode == 0, again.stderr
    assert _log(scaled) == _log(source)
    _consistent(scaled)


def test_a_move_needs_a_target(source: Settings) -> None:
    missing = _cli(source, "domain", "move", "k")
    assert missing.exit_code == 1 and "--to-database" in missing.output
    itself = _cli(
        source,
        "domain",
        "move",
        "k",
        "--to-database",
        source.database_url,
        "--to-home",
        source.home,
    )
    assert itself.exit_code == 1 and "the target is this deployment" in itself.output


def test_backup_and_restore_into_an_empty_deployment(
    source: Settings, target: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "backup"
    killed = _process(source, "backup", "create", folder, KNNVOCAB_FAULT="backup.after_domain")
    assert killed.returncode == -9
    assert (folder / "backup.partial.json").exists() and not (folder / "backup.json").exists()
    refused = _cli(target, "backup", "restore", folder)
    assert refused.exit_code == 1 and "unfinished backup" in refused.output
    created = _process(source, "backup", "create", folder)
    assert created.returncode == 0, created.stderr
    assert (folder / "backup.json").exists() and not (folder / "backup.partial.json").exists()

    killed = _process(target, "backup", "restore", folder, KNNVOCAB_FAULT="import.after_points")
    assert killed.returncode == -9
    restored = _process(target, "backup", "restore", folder)
    assert restored.returncode == 0, restored.stderr
    assert _log(target) == _log(source)
    with Workspace(source) as a, Workspace(target) as b:
        verify_same(a, b, "k")
    _consistent(target)


def test_a_tampered_backup_is_refused_before_anything_is_written(
    source: Settings, target: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "backup"
    assert _cli(source, "backup", "create", folder).exit_code == 0
    archive = folder / "k.knnvocab.tar"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    refused = _cli(target, "backup", "restore", folder)
    assert refused.exit_code == 1 and "sha256 differs" in refused.output
    assert _cli(target, "domain", "list", "--json").output.strip() in ("[]", "")


def test_an_unreachable_target_is_one_line_and_nothing_changes(
    source: Settings, tmp_path: Path
) -> None:
    before = _log(source)
    nowhere = "postgresql+psycopg://postgres@127.0.0.1:9/none"
    moved = _cli(
        source,
        "domain",
        "move",
        "k",
        "--to-database",
        nowhere,
        "--to-qdrant",
        f"local:{tmp_path / 'q'}",
    )
    assert moved.exit_code == 1 and "Traceback" not in moved.output
    errors = [line for line in moved.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "127.0.0.1:9" in errors[0], moved.output
    assert _log(source) == before
