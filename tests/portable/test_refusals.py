"""What an import refuses before it writes anything (a damaged, truncated, foreign or
hostile archive; a name clash), what an export refuses (a domain mid-change), and an
import killed with SIGKILL half-way and run again. SQLite catalog, embedded store."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from knnvocab.catalog.domains import get_domain
from knnvocab.catalog.versions import begin_version
from knnvocab.config import Settings
from knnvocab.errors import VersionStateError
from knnvocab.history import version_log
from knnvocab.lifecycle import delete_domain, doctor, domain_infos, new_domain
from knnvocab.portable import export_domain
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace
from tests.portable.conftest import audit_rows, fresh, one_error_line, run_cli

REPO = Path(__file__).resolve().parents[2]


def rewrite(archive: Path, dest: Path, edit: Callable[[str, bytes], bytes]) -> Path:
    """A copy of ``archive`` with each member's bytes passed through ``edit``."""
    with tarfile.open(archive) as src, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as out:
        for member in src.getmembers():
            extracted = src.extractfile(member)
            assert extracted is not None
            data = edit(member.name, extracted.read())
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    return dest


def untouched(settings: Settings) -> None:
    """Nothing was written: no domain, no audit event, no vector collection."""
    with Workspace(settings) as ws:
        assert domain_infos(ws) == []
        assert audit_rows(settings, "k") == []
    vectors = settings.vectors_dir
    assert not vectors.exists() or not [p for p in vectors.iterdir() if p.is_dir()]


def flip(target: str) -> Callable[[str, bytes], bytes]:
    def edit(name: str, data: bytes) -> bytes:
        if name != target:
            return data
        middle = len(data) // 2
        return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]

    return edit


@pytest.mark.parametrize("member", ["catalog/versions.json", "points/"])
def test_a_changed_byte_is_refused_naming_the_member(
    small: tuple[Settings, Path], tmp_path: Path, member: str
) -> None:
    _, archive = small
    with tarfile.open(archive) as tar:
        [name] = [n for n in tar.getnames() if n.startswith(member)]
    bad = rewrite(archive, tmp_path / "bad.tar", flip(name))
    target = fresh(tmp_path / "t")
    one_error_line(run_cli(target, "import", bad), name, "checksum")
    untouched(target)


def test_a_truncated_archive_is_refused(small: tuple[Settings, Path], tmp_path: Path) -> None:
    _, archive = small
    data = archive.read_bytes()
    target = fresh(tmp_path / "t")
    for cut in (len(data) // 2, len(data) - 2048):
        bad = tmp_path / f"cut{cut}.tar"
        bad.write_bytes(data[:cut])
        one_error_line(run_cli(target, "import", bad), str(bad))
        untouched(target)


def test_another_format_version_is_refused(small: tuple[Settings, Path], tmp_path: Path) -> None:
    _, archive = small

    def newer(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        return json.dumps({**json.loads(data), "format_version": 2}).encode()

    bad = rewrite(archive, tmp_path / "v2.tar", newer)
    target = fresh(tmp_path / "t")
    one_error_line(run_cli(target, "import", bad), "format version 2", "reads version 1")
    untouched(target)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_a_member_outside_the_archive_is_refused(
    small: tuple[Settings, Path], tmp_path: Path, kind: str
) -> None:
    _, archive = small
    bad = tmp_path / "evil.tar"
    with tarfile.open(archive) as src, tarfile.open(bad, "w", format=tarfile.PAX_FORMAT) as out:
        for member in src.getmembers():
            out.addfile(member, src.extractfile(member))
        evil = tarfile.TarInfo({"dotdot": "../evil", "absolute": "/tmp/evil"}.get(kind, "x"))
        if kind == "symlink":
            evil.type, evil.linkname = tarfile.SYMTYPE, "/etc/passwd"
            out.addfile(evil)
        else:
            evil.size = 4
            out.addfile(evil, io.BytesIO(b"evil"))
    target = fresh(tmp_path / "t")
    reason = {"dotdot": "'..'", "absolute": "absolute", "symlink": "links"}[kind]
    one_error_line(run_cli(target, "import", bad), reason)
    untouched(target)
    assert not (tmp_path / "evil").exists()


def test_a_name_clash_is_refused(small: tuple[Settings, Path], tmp_path: Path) -> None:
    _, archive = small
    target = fresh(tmp_path / "t")
    with Workspace(target) as ws:
        new_domain(ws, "k", actor="someone")
    one_error_line(run_cli(target, "import", archive), "'k' already exists", "--as")
    with Workspace(target) as ws:
        assert [d.name for d in domain_infos(ws)] == ["k"]
        assert version_log(ws, "k") == []
    assert [r["action"] for r in audit_rows(target, "k")] == ["domain.create"]
    assert run_cli(target, "import", archive, "--as", "k-copy").exit_code == 0


def test_export_refuses_a_domain_mid_change(small: tuple[Settings, Path], tmp_path: Path) -> None:
    copy = fresh(tmp_path / "c")
    assert run_cli(copy, "import", small[1]).exit_code == 0
    with Workspace(copy) as ws, ws.catalog.session() as s:
        domain = get_domain(s, "k")
        assert domain.encoder is not None
        begin_version(s, domain, "ingest", domain.encoder, "bob")
    dest = tmp_path / "out.tar"
    one_error_line(run_cli(copy, "export", "k", dest), "pending version 3", "roll back")
    assert not dest.exists() and list(tmp_path.glob(".out.tar*")) == []
    with Workspace(copy) as ws, pytest.raises(VersionStateError):
        export_domain(ws, "k", dest)


@pytest.mark.slow
def test_an_import_killed_after_its_points_finishes_when_run_again(
    small: tuple[Settings, Path], tmp_path: Path
) -> None:
    settings, archive = small
    target = fresh(tmp_path / "t")
    env = {
        **os.environ,
        "KNNVOCAB_HOME": str(target.home),
        "KNNVOCAB_DATABASE_URL": target.database_url,
        "KNNVOCAB_USER": "importer",
        "KNNVOCAB_QDRANT_URL": "",
    }
    command = [sys.executable, "-m", "knnvocab", "import", str(archive)]
    killed = subprocess.run(
        command, env={**env, "KNNVOCAB_FAULT": "import.after_points"}, cwd=REPO, timeout=120
    )
    assert killed.returncode == -9
    collection = next(iter(json.loads(_manifest(archive))["counts"]["points"]))
    with Workspace(target) as ws:
        assert domain_infos(ws) == []  # the catalog never saw it
        assert ws.store.count(collection, PointFilter("k")) > 0  # its points are there
    again = subprocess.run(command, env=env, cwd=REPO, timeout=120, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    with Workspace(target) as ws:
        assert doctor(ws).ok
        imported = [r.to_json() for r in version_log(ws, "k")]
        held = ws.store.count(collection, PointFilter("k"))
    with Workspace(settings) as ws:
        assert imported == [r.to_json() for r in version_log(ws, "k")]
        assert held == ws.store.count(collection, PointFilter("k"))
    assert audit_rows(target, "k")[:-1] == audit_rows(settings, "k")
    third = subprocess.run(command, env=env, cwd=REPO, timeout=120, capture_output=True, text=True)
    assert third.returncode == 0 and "already imported" in third.stdout


def _manifest(archive: Path) -> bytes:
    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        return member.read()


def test_a_deleted_namesakes_events_stay_behind(
    small: tuple[Settings, Path], tmp_path: Path
) -> None:
    _, archive = small
    target = fresh(tmp_path / "t")
    assert run_cli(target, "import", archive).exit_code == 0
    first = audit_rows(target, "k")
    with Workspace(target) as ws:
        delete_domain(ws, "k", actor="importer")
    # the same archive again: the domain is gone, so this is a new import, not a re-run
    assert run_cli(target, "import", archive).exit_code == 0
    assert run_cli(target, "export", "k", tmp_path / "k.tar").exit_code == 0
    manifest = json.loads(_manifest(tmp_path / "k.tar"))
    assert manifest["counts"]["audit_events"] == len(first)
