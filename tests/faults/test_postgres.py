"""Fault matrix, Postgres restarted (`pg_ctlcluster … restart`) under an ingest and under a
service answering queries. A private cluster, made and dropped by this module: the shared
one is never restarted.

An ingest either survives the restart (the pool pings and reconnects) or fails with one
line saying what became of its version; either way `ingest --resume` or a re-run ends with
every instance stored once and `doctor` consistent. A service answers 200 or 503 (a JSON
error, never a traceback or a 500) while the catalog is down, and recovers by itself.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from knnvocab.catalog.models import IngestRun
from knnvocab.config import Settings
from knnvocab.embed.spec import EncoderSpec
from knnvocab.history import version_log
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.lifecycle import doctor
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace
from tests.data import index_dataset
from tests.faults.helpers import Cluster, private_cluster
from tests.ingest.test_resume import expected_instances, wait_for
from tests.service.conftest import build_home
from tests.service.server import Server, knnvocab_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with private_cluster() as made:
        yield made


def _images_done(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            done = conn.execute(
                sa.text("select max(images_done) from ingest_run where status = 'running'")
            ).scalar()
        return int(done or 0)
    finally:
        engine.dispose()


def test_ingest_through_a_catalog_restart(
    cluster: Cluster, tmp_path: Path, tiny_model: EncoderSpec
) -> None:
    url = cluster.create_database("ingest")
    settings = Settings(home=tmp_path / "home", database_url=url, user="tester")
    data = index_dataset(tmp_path / "data", copies=10)  # 40 real photos
    with Workspace(settings) as ws:  # a published version 1 to protect
        options = IngestOptions("index-masks", dataset_name="first")
        first = ingest(
            ws, "farm", index_dataset(tmp_path / "first"), options, tiny_model, actor="t"
        )
    args = ["ingest", "farm", str(data), "--format", "index-masks", "--dataset-name", "big"]
    args += ["--batch-size", "1", "--checkpoint-every", "0"]  # the catalog is written often
    proc = subprocess.Popen(
        [sys.executable, "-m", "knnvocab", *args],
        env=knnvocab_env(settings.home, url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: _images_done(url) >= 2, 120, "the ingest to checkpoint two images")
        restarted = datetime.now(UTC)
        cluster.ctl("restart")
        _, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert "Traceback" not in stderr, stderr[-3000:]
    with Workspace(settings) as ws:
        state = version_log(ws, "farm")[-1].state
        if proc.returncode == 0:  # it reconnected and went on
            assert state == "published"
            with ws.catalog.session() as s:
                ended = s.scalar(sa.select(sa.func.max(IngestRun.ended_at)))
            assert ended is not None and ended > restarted, "the ingest ended before the restart"
        else:  # it failed, saying so in one line, and the catalog says what became of it
            errors = [line for line in stderr.splitlines() if line.startswith("error:")]
            assert proc.returncode == 1 and len(errors) == 1, stderr[-3000:]
            assert "catalog" in errors[0] and state in ("failed", "pending"), (state, errors)
            if state == "pending":
                assert "left pending" in errors[0] and "--resume" in errors[0], errors[0]
            options = IngestOptions("index-masks", dataset_name="big", resume=state == "pending")
            ingest(ws, "farm", data, options, actor="tester")
        report = doctor(ws)
        assert report.ok, report.to_json()
        collection = ws.encoder(tiny_model).info.collection
        ids = [p.id for p in ws.store.scroll(collection, PointFilter("farm", dataset="big"))]
        assert len(ids) == len(set(ids)) == expected_instances(data, 16)
        at_first = PointFilter("farm", visible_at=1)
        assert ws.store.count(collection, at_first) == first.total_added


def _worker(url: str, token: str, photo: bytes, stop: threading.Event, seen: list[tuple]) -> None:
    routes = itertools.cycle(["domain", "versions", "segment"])
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
        while not stop.is_set():
            route = next(routes)
            try:
                if route == "segment":
                    files = {"image": ("photo.jpg", photo, "image/jpeg")}
                    r = c.post("/v1/domains/street/segment", files=files, timeout=60)
                else:
                    path = "/v1/domains/street" + ("/versions" if route == "versions" else "")
                    r = c.get(path, timeout=60)
            except httpx.TransportError as exc:  # the service itself must stay up
                seen.append((route, 0, repr(exc), time.monotonic()))
                continue
            seen.append((route, r.status_code, r.text[:2000], time.monotonic()))


def test_service_under_load_through_a_catalog_restart(
    cluster: Cluster,
    tmp_path: Path,
    tiny_model: EncoderSpec,
    labelme_voc: Path,
) -> None:
    url = cluster.create_database("service")
    settings = Settings(home=tmp_path / "home", database_url=url, user="tester")
    token = build_home(settings, tiny_model, labelme_voc)["street:query"]
    photo = sorted((labelme_voc / "JPEGImages").glob("*.jpg"))[0].read_bytes()
    seen: list[tuple] = []
    stop = threading.Event()
    log = tmp_path / "serve.log"
    with Server(knnvocab_env(settings.home, url), log) as server:
        pid = server.process.pid if server.process else None
        threads = [
            threading.Thread(target=_worker, args=(server.url, token, photo, stop, seen))
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)
            cluster.ctl("restart")  # as a restart is usually done
            cluster.ctl("stop")  # and a down window long enough to be seen for certain
            time.sleep(1.5)
            down = time.monotonic()
            cluster.ctl("start")
            up = time.monotonic()
            wait_for(
                lambda: any(s[1] == 200 and s[3] > up for s in seen), 30, "a 200 after the start"
            )
        finally:
            stop.set()
            for t in threads:
                t.join(90)
        assert server.alive() and server.process and server.process.pid == pid
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as c:
            assert c.get("/v1/domains/street/versions", timeout=60).status_code == 200
    statuses = {s[1] for s in seen}
    assert statuses <= {200, 503}, [s for s in seen if s[1] not in (200, 503)][:3]
    unavailable = [s for s in seen if s[1] == 503]
    assert any(s[3] <= down for s in unavailable), "no 503 while the catalog was down"
    for route, _, text, _ in unavailable:
        assert '"code":"unavailable"' in text.replace(" ", ""), (route, text)
    assert "Traceback" not in "".join(s[2] for s in seen)
    assert "unexpected error" not in log.read_text()  # nothing answered 500
