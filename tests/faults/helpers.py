"""Running knnvocab as a real process with a fault setting, and the checks every fault test
ends with: per-class counts, the published versions, and `doctor` saying consistent; a
small tmpfs and a private Postgres cluster (never the shared one) for the disk and
Postgres rows. A crash of the command (SIGBUS included) fails the test instead of
killing pytest, since it runs in its own process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from knnvocab.config import Settings
from knnvocab.history import version_log, vocabulary
from knnvocab.lifecycle import doctor, domain_infos
from knnvocab.workspace import Workspace
from tests.lifecycle.helpers import catalog_counts, store_counts
from tests.service.server import free_port

KILLED = -signal.SIGKILL


def sqlite_home(home: Path, user: str = "tester") -> Settings:
    """The embedded deployment of ``home`` (its SQLite catalog inside it, so a copy of the
    folder is a copy of the deployment)."""
    return Settings(home, f"sqlite:///{home / 'catalog.sqlite3'}", user=user)


def copy_home(settings: Settings, to: Path) -> Settings:
    """A copy of an embedded deployment (closed) at ``to``: its holes stay holes (a
    qdrant-edge shard is ~165 MB of sparse files, a few hundred KB of data)."""
    to.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", "--sparse=always", str(settings.home), str(to)], check=True)
    for lock in to.rglob("*.lock"):
        lock.unlink()
    return sqlite_home(to, settings.user)


def env_of(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a knnvocab process on ``settings`` (nothing else inherited but
    PATH and HOME)."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/root"),
        "KNNVOCAB_HOME": str(settings.home),
        "KNNVOCAB_DATABASE_URL": settings.database_url,
        "KNNVOCAB_QDRANT_URL": settings.qdrant_url or "",
        "KNNVOCAB_USER": settings.user,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def knnvocab(
    settings: Settings, *args: str | Path, fault: str | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    """``knnvocab ARGS`` as a real process; with ``fault``, ``KNNVOCAB_FAULT`` is set."""
    env = env_of(settings, **({"KNNVOCAB_FAULT": fault} if fault else {}), **extra)
    command = [sys.executable, "-m", "knnvocab", *[str(a) for a in args]]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def cli(settings: Settings, *args: str | Path) -> str:
    """``knnvocab ARGS`` in this process (typer's runner: the same code, no interpreter
    start), asserted to succeed; its output."""
    from typer.testing import CliRunner

    from knnvocab.cli import app

    env = env_of(settings)
    result = CliRunner().invoke(app, [str(a) for a in args], env=env)
    assert result.exit_code == 0, f"{args}\n{result.output}"
    return result.output


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """``result``, asserted to have succeeded."""
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result


def one_line_error(result: subprocess.CompletedProcess[str], *parts: str) -> str:
    """Exit code 1, no traceback, one ``error:`` line holding every part; the line."""
    assert result.returncode == 1, f"{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr + result.stdout
    lines = [x for x in (result.stderr + result.stdout).splitlines() if x.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def data_root(root: Path, labelme_voc: Path) -> Path:
    """A service's data root under ``root`` holding the labelme photos as ``voc``."""
    data = root / "data"
    data.mkdir(exist_ok=True)
    (data / "voc").symlink_to(labelme_voc, target_is_directory=True)
    return data


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 0.05 s until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def head_classes(settings: Settings, domain: str) -> dict[str, tuple[bool, int]]:
    """Per class name at the head version: (live, instances)."""
    with Workspace(settings) as ws:
        return {c.name: (c.live, c.instances) for c in vocabulary(ws, domain).classes}


def versions(settings: Settings, domain: str) -> list[tuple[int, str, str]]:
    """(number, state, operation) of every version of ``domain``."""
    with Workspace(settings) as ws:
        return [(r.number, r.state, r.operation) for r in version_log(ws, domain)]


def published(settings: Settings, domain: str) -> dict[int, dict[str, Any]]:
    """Per published version: its class counts (live class name -> instances)."""
    with Workspace(settings) as ws:
        numbers = [r.number for r in version_log(ws, domain) if r.state == "published"]
        return {n: {c.name: c.instances for c in vocabulary(ws, domain, n).live} for n in numbers}


def assert_consistent(settings: Settings) -> None:
    """`doctor` (every domain, no repair) finds nothing wrong, and at every domain's head
    the store shows exactly what the catalog counts (the head is what later versions
    build on, reproducible or not)."""
    with Workspace(settings) as ws:
        report = doctor(ws)
        assert report.ok, report.to_json()
        for info in domain_infos(ws):
            if info.head_version:
                head = info.head_version
                assert store_counts(ws, info.name, head) == catalog_counts(ws, info.name, head)


# A small tmpfs and a private Postgres cluster (the disk and Postgres rows) ------------

PG_VERSION = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]


def _run(*command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


@contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``folder`` (root only), unmounted afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    done = _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs on {folder}: {done.stderr.strip()}", pytrace=False)
    try:
        yield folder
    finally:
        _run("umount", "-l", str(folder))


@contextmanager
def private_cluster() -> Iterator[Cluster]:
    """A throwaway Postgres cluster on a free port (trust auth), dropped afterwards: the
    tests restart it, which they must never do to the cluster others share."""
    cluster = Cluster(f"knnvocab_f2_{uuid.uuid4().hex[:8]}", free_port())
    made = _run(
        "pg_createcluster", PG_VERSION, cluster.name, "--port", str(cluster.port),
        "--", "--auth=trust",
    )  # fmt: skip
    try:
        if made.returncode != 0:
            pytest.fail(f"pg_createcluster failed: {made.stderr.strip()}", pytrace=False)
        cluster.ctl("start")
        yield cluster
    finally:
        _run("pg_dropcluster", "--stop", PG_VERSION, cluster.name)


class Cluster:
    """A private Postgres cluster: its name and port."""

    def __init__(self, name: str, port: int) -> None:
        self.name, self.port = name, port

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def ctl(self, action: str) -> None:
        """``pg_ctlcluster … start|stop|restart`` (not through systemd)."""
        done = _run(
            "pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, self.name, action,
            timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.fail(f"pg_ctlcluster {action} {self.name}: {done.stderr.strip()}")

    def create_database(self, name: str) -> str:
        import sqlalchemy as sa

        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)
