"""Real processes on one Postgres catalog: a second ingest into a busy domain fails fast
naming the pending version, or waits with --wait. The embedded store is owned by one
process at a time (one shard per collection): an ingest into another domain is refused
naming the owner, or waits for it with KNNVOCAB_STORE_WAIT; never two pending versions in
one domain. The test polls the catalog; it never relies on sleeps alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import Popen
from typing import Any

import pytest
import sqlalchemy as sa

from knnvocab.embed.spec import EncoderSpec
from tests.data import index_dataset

pytestmark = pytest.mark.slow


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def catalog(pg_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(pg_url)
    yield engine
    engine.dispose()


def versions(engine: sa.Engine, domain: str) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select v.number, v.state from vocab_version v join domain d "
                "on d.id = v.domain_id where d.name = :d order by v.number"
            ),
            {"d": domain},
        ).all()
    return [(int(n), str(s)) for n, s in rows]


def ingesting(engine: sa.Engine) -> bool:
    """Some ingest run is pending and has made progress (it holds its domain's shard)."""
    with engine.connect() as conn:
        done = conn.execute(
            sa.text("select max(images_done) from ingest_run where status = 'running'")
        ).scalar()
    return bool(done)


def test_one_writer_per_domain_across_processes(
    tmp_path: Path, pg_url: str, catalog: sa.Engine, tiny_model: EncoderSpec
) -> None:
    """A ingests into d1. Once it has written points it is paused (SIGSTOP: mid-ingest, it
    keeps its pending version and the store), so what follows does not depend on timing:
    B (d1) fails fast naming A's pending version, C (d2) is refused naming A's process,
    W (d1, --wait) is seen waiting and Q (d2, KNNVOCAB_STORE_WAIT) queues for the store.
    A resumes and finishes, and W and Q go through after it."""
    big = index_dataset(tmp_path / "big", copies=10)  # 40 real photos
    small = index_dataset(tmp_path / "small")
    env = {
        **os.environ,
        "KNNVOCAB_HOME": str(tmp_path / "home"),
        "KNNVOCAB_DATABASE_URL": pg_url,
        "KNNVOCAB_USER": "tester",
        "KNNVOCAB_QDRANT_URL": "",
    }
    model = ["--model", tiny_model.model, "--checkpoint", str(tiny_model.checkpoint)]
    started: list[Popen[str]] = []

    def knnvocab(
        domain: str, data: Path, *extra: str, log: Any = subprocess.PIPE, wait: int = 0
    ) -> Popen[str]:
        cmd = [sys.executable, "-m", "knnvocab", "ingest", domain, str(data)]
        cmd += ["--format", "index-masks", "--dataset-name", data.name, *model, *extra]
        run_env = {**env, "KNNVOCAB_STORE_WAIT": str(wait)}
        proc = subprocess.Popen(cmd, env=run_env, stdout=log, stderr=log, text=True)
        started.append(proc)
        return proc

    logs = {name: tmp_path / f"{name}.log" for name in ("first", "waiting", "queued")}
    with (
        logs["first"].open("w") as first_log,
        logs["waiting"].open("w") as waiting_log,
        logs["queued"].open("w") as queued_log,
    ):
        try:
            timing = ("--batch-size", "1", "--checkpoint-every", "0")
            first = knnvocab("d1", big, *timing, log=first_log)
            wait_for(lambda: ingesting(catalog), 120, "the first ingest to write points")
            first.send_signal(signal.SIGSTOP)
            busy, other = knnvocab("d1", small), knnvocab("d2", small)
            _, busy_err = busy.communicate(timeout=120)
            assert busy.returncode == 1, busy_err
            assert "error: domain 'd1' has pending version 1: ingest by tester@" in busy_err
            assert "--wait" in busy_err and "Traceback" not in busy_err
            _, other_err = other.communicate(timeout=120)
            assert other.returncode == 1, other_err  # the store is A's: refused, named
            assert f"is open in process {first.pid}" in other_err
            assert "KNNVOCAB_STORE_WAIT" in other_err and "Traceback" not in other_err
            assert first.poll() is None
            assert versions(catalog, "d1") == [(1, "pending")]
            assert versions(catalog, "d2") == []  # refused before anything was recorded

            waiting = knnvocab("d1", small, "--wait", log=waiting_log)
            queued = knnvocab("d2", small, log=queued_log, wait=240)
            wait_for(lambda: "waiting (--wait)" in logs["waiting"].read_text(), 120, "W to wait")
            assert waiting.poll() is None and queued.poll() is None
            first.send_signal(signal.SIGCONT)

            assert first.wait(timeout=120) == 0, logs["first"].read_text()[-2000:]
            assert waiting.wait(timeout=240) == 0, logs["waiting"].read_text()[-2000:]
            assert queued.wait(timeout=240) == 0, logs["queued"].read_text()[-2000:]
        finally:
            for proc in started:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGCONT)
                    proc.kill()
                proc.communicate()
    check_history(catalog)


def check_history(catalog: sa.Engine) -> None:
    """W's and Q's versions began after A's ended (they waited for it)."""
    assert versions(catalog, "d1") == [(1, "published"), (2, "published")]
    with catalog.connect() as conn:
        rows = conn.execute(
            sa.text(
                "select d.name, v.number, v.created_at, v.finished_at from vocab_version v "
                "join domain d on d.id = v.domain_id order by d.name, v.number"
            )
        ).all()
    span = {(str(name), int(n)): (begun, ended) for name, n, begun, ended in rows}
    a, w, q = span[("d1", 1)], span[("d1", 2)], span[("d2", 1)]
    assert w[0] > a[1] and q[0] > a[1]  # the waiting ingests began after the first ended
    assert versions(catalog, "d2") == [(1, "published")]
