"""Fault matrix, disk full: the file system under ``KNNVOCAB_HOME`` (a small tmpfs) runs out
in the middle of an ingest, an export and a backup. Each ends with a one-line error naming
the path (no traceback, no bus error), the pending version failed or left for `doctor
--repair`, nothing published damaged; once space is freed the same command succeeds and
`doctor` reports the deployment consistent.

The space runs out at a named point in the work (`knnvocab.faults.fill_disk`): the
process itself fills the file system with ``$KNNVOCAB_HOME/fault.filler``.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from knnvocab.cli import app
from knnvocab.config import Settings
from knnvocab.embed.spec import EncoderSpec
from knnvocab.errors import DiskFullError
from knnvocab.history import version_log
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.lifecycle import doctor
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace
from tests.data import index_dataset
from tests.faults.helpers import knnvocab, one_line_error, tmpfs

pytestmark = pytest.mark.slow


@dataclass
class Disk:
    """A home on a small tmpfs with two published domains (``farm``, ``shop``)."""

    settings: Settings
    data: Path  # a dataset on the ordinary disk (12 real photos)
    published: dict[str, int]  # points of each domain at version 1

    @property
    def home(self) -> Path:
        return self.settings.home

    @property
    def filler(self) -> Path:
        return self.home / "fault.filler"

    def run(self, *args: str | Path, fault: str) -> subprocess.CompletedProcess[str]:
        return knnvocab(self.settings, *args, fault=fault)

    def cli(self, *args: str | Path) -> None:
        env = {
            "KNNVOCAB_HOME": str(self.home),
            "KNNVOCAB_DATABASE_URL": self.settings.database_url,
            "KNNVOCAB_USER": "tester",
            "KNNVOCAB_FAULT": "",
        }
        result = CliRunner().invoke(app, [str(a) for a in args], env=env)
        assert result.exit_code == 0, result.output

    def states(self, domain: str) -> list[tuple[int, str]]:
        with Workspace(self.settings) as ws:
            return [(r.number, r.state) for r in version_log(ws, domain)]

    def check_intact(self, repair_at_most_once: bool = False) -> None:
        """Published points unchanged, and doctor consistent (after at most one repair)."""
        with Workspace(self.settings) as ws:
            report = doctor(ws)
            if not report.ok and repair_at_most_once:
                doctor(ws, repair=True, actor="tester")
                report = doctor(ws)
            assert report.ok, report.to_json()
            for domain, n in self.published.items():
                collection = _catalog_collection(ws, domain)
                assert ws.store.count(collection, PointFilter(domain, visible_at=1)) == n


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory, tiny_model: EncoderSpec) -> Iterator[Disk]:
    root = tmp_path_factory.mktemp("disk")
    data = index_dataset(root / "data", copies=3)
    first = index_dataset(root / "first", copies=1)
    # 320 MB: a shard's sparse files (~166 MB) + the store's reserve + what is written
    with tmpfs(root / "mnt", "320m") as mnt:
        home = mnt / "home"
        settings = Settings(home, f"sqlite:///{home / 'catalog.sqlite3'}", user="tester")
        published = {}
        with Workspace(settings) as ws:
            for domain in ("farm", "shop"):
                options = IngestOptions("index-masks", dataset_name="first")
                summary = ingest(ws, domain, first, options, tiny_model, actor="tester")
                published[domain] = summary.total_added
        yield Disk(settings, data, published)


def _catalog_collection(ws: Workspace, domain: str) -> str:
    from knnvocab.catalog.domains import get_domain

    with ws.catalog.session() as s:
        encoder = get_domain(s, domain).encoder
        assert encoder is not None
        return encoder.collection


def _fill(path: Path) -> None:
    """Take every free byte of ``path``'s file system."""
    with path.open("ab") as f:
        while True:
            try:
                os.posix_fallocate(f.fileno(), os.fstat(f.fileno()).st_size, 2**20)
            except OSError:
                break
        for _ in range(256):  # the last pages
            try:
                os.posix_fallocate(f.fileno(), os.fstat(f.fileno()).st_size, 4096)
            except OSError:
                return


def test_ingest_runs_out_of_space_midway_fails_its_version(disk: Disk) -> None:
    args = ("ingest", "farm", disk.data, "--format", "index-masks", "--dataset-name", "big")
    args += ("--batch-size", "2")
    done = disk.run(*args, fault="ingest.after_batch:disk-low")
    one_line_error(done, "the disk is full", str(disk.home / "vectors"), "MiB needed")
    assert disk.states("farm") == [(1, "published"), (2, "failed")]
    disk.filler.unlink()
    disk.check_intact()
    disk.cli(*args)  # the same command, space freed
    assert disk.states("farm")[-1] == (3, "published")
    disk.check_intact()


def test_ingest_on_a_full_disk_leaves_its_version_for_doctor(disk: Disk) -> None:
    _fill(disk.filler)  # full before it starts: refused, nothing taken
    with Workspace(disk.settings) as ws, pytest.raises(DiskFullError, match="disk is full"):
        ingest(ws, "shop", disk.data, IngestOptions("index-masks"), actor="tester")
    disk.filler.unlink()
    args = ("ingest", "shop", disk.data, "--format", "index-masks", "--dataset-name", "big")
    done = disk.run(*args, fault="ingest.after_batch:disk-full")  # nothing left mid-way
    one_line_error(done, "the disk is full", str(disk.home))
    assert disk.states("shop")[-1] == (2, "pending")  # undoing needs room too
    disk.filler.unlink()
    disk.check_intact(repair_at_most_once=True)  # doctor rolls the dead version back
    assert disk.states("shop")[-1] == (2, "rolled_back")
    disk.cli(*args)
    assert disk.states("shop")[-1] == (3, "published")
    disk.check_intact()


def test_export_runs_out_of_space_midway(disk: Disk) -> None:
    out = disk.home.parent / "out"
    out.mkdir()
    dest = out / "farm.knnvocab.tar"
    done = disk.run("export", "farm", dest, fault="export.after_points:disk-full")
    one_line_error(done, "the disk is full", str(out))
    assert list(out.iterdir()) == []  # no partial archive, no scratch folder
    disk.filler.unlink()
    disk.cli("export", "farm", dest)
    with tarfile.open(dest) as tar:
        assert "manifest.json" in tar.getnames()
    disk.check_intact()


def test_backup_runs_out_of_space_midway(disk: Disk) -> None:
    folder = disk.home.parent / "backup"
    done = disk.run("backup", "create", folder, fault="backup.after_domain:disk-full")
    one_line_error(done, "the disk is full", str(folder))
    assert not (folder / "backup.json").exists()
    assert (folder / "backup.partial.json").exists()
    disk.filler.unlink()
    disk.cli("backup", "create", folder)  # finishes the partial backup
    assert (folder / "backup.json").exists()
    assert sorted(p.name for p in folder.glob("*.tar")) == [
        "farm.knnvocab.tar",
        "shop.knnvocab.tar",
    ]
    disk.check_intact()
