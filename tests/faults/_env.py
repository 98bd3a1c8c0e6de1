"""What the fault tests of the disk, Postgres and corruption rows share: a small tmpfs, a
private Postgres cluster (never the shared one), and the real `knnvocab` command run as a
subprocess (a crash in it, SIGBUS included, fails the test instead of killing pytest)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.service.server import free_port, knnvocab_env

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


def knnvocab(
    home: Path, database_url: str, *args: str | Path, timeout: float = 180, **extra: str
) -> subprocess.CompletedProcess[str]:
    """The real command in its own process, on ``home`` and ``database_url``."""
    env = knnvocab_env(home, database_url, **extra)
    command = [sys.executable, "-m", "knnvocab", *(str(a) for a in args)]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_clean_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The command failed with exit code 1 and a one-line ``error:`` message holding
    ``needles``, no traceback; returns the message."""
    assert done.returncode == 1, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def copy_home(src: Path, dest: Path) -> Path:
    """A copy of a home, its sparse shard files kept sparse (``cp -a``), locks left out."""
    done = _run("cp", "-a", "--sparse=always", str(src), str(dest))
    assert done.returncode == 0, done.stderr
    for lock in dest.rglob("*.lock"):
        lock.unlink()
    shutil.rmtree(dest / "cache", ignore_errors=True)
    return dest
