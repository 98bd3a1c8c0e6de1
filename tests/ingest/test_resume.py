"""An ingest killed with SIGKILL leaves the head unchanged; --resume completes it without a
duplicate point. Real processes, a Postgres catalog and the embedded store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from knnvocab.config import Settings
from knnvocab.datasets import open_dataset
from knnvocab.embed.spec import EncoderSpec
from knnvocab.history import version_log
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.lifecycle import doctor
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace
from tests.data import index_dataset

pytestmark = pytest.mark.slow


def expected_instances(root: Path, min_area: int) -> int:
    reader = open_dataset("index-masks", root)
    return sum(
        int((reader.load(ref).instances.areas >= min_area).sum()) for ref in reader.samples()
    )


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def test_sigkill_then_resume(tmp_path: Path, pg_url: str, tiny_model: EncoderSpec) -> None:
    data = index_dataset(tmp_path / "data", copies=15)  # 60 real photos
    settings = Settings(home=tmp_path / "home", database_url=pg_url, user="tester")
    with Workspace(settings) as ws:  # a published version 1 to protect
        first = index_dataset(tmp_path / "first", copies=1)
        ingest(
            ws,
            "farm",
            first,
            IngestOptions("index-masks", dataset_name="first"),
            tiny_model,
            actor="tester",
        )
    env = {
        **os.environ,
        "KNNVOCAB_HOME": str(settings.home),
        "KNNVOCAB_DATABASE_URL": pg_url,
        "KNNVOCAB_USER": "tester",
    }
    cmd = [
        sys.executable,
        "-m",
        "knnvocab",
        "ingest",
        "farm",
        str(data),
        "--format",
        "index-masks",
        "--batch-size",
        "1",
        "--dataset-name",
        "big",
        "--checkpoint-every",
        "0.2",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = sa.create_engine(pg_url)

    def progressed() -> bool:
        with engine.connect() as conn:
            done = conn.execute(
                sa.text("select max(images_done) from ingest_run where status = 'running'")
            ).scalar()
        return bool(done) and 0 < done < 60

    try:
        wait_for(progressed, 120, "the ingest to checkpoint some images")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        engine.dispose()
    assert proc.returncode == -signal.SIGKILL

    with Workspace(settings) as ws:
        log = version_log(ws, "farm")
        assert [(r.number, r.state) for r in log] == [(1, "published"), (2, "pending")]
        with ws.catalog.session() as s:
            head = s.execute(sa.text("select head_version from domain")).scalar()
        assert head == 1  # readers still see version 1 only
        summary = ingest(
            ws, "farm", data, IngestOptions("index-masks", resume=True), actor="tester"
        )
        assert (summary.version, summary.resumed) == (2, True)
        collection = ws.encoder(tiny_model).info.collection
        big = PointFilter("farm", dataset="big")
        ids = [p.id for p in ws.store.scroll(collection, big)]
        assert len(ids) == len(set(ids)) == expected_instances(data, 16)
        assert ws.store.count(collection, PointFilter("farm", added_in=2)) == len(ids)
        with ws.catalog.session() as s:
            runs = s.execute(
                sa.text("select status, images_done from ingest_run order by started_at")
            ).all()
        assert [r[0] for r in runs] == ["succeeded", "interrupted", "succeeded"]
        assert 0 < runs[1][1] < 60  # the killed run got part of the way
        report = doctor(ws)
        assert report.ok, report.to_json()
