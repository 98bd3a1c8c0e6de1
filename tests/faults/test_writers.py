"""Two writers on one domain, in real processes: the CLI and the service on an embedded
home, and two services on the scaled deployment's code path (one Postgres catalog). The
first writer is held at a known step (``KNNVOCAB_FAULT=change.before_publish:pause``, its
pending version taken); the second is refused in one clear line or a 409, and the catalog
never holds two pending versions. Two CLI processes on one Postgres catalog (one refused,
one waiting with --wait) are tests/lifecycle/test_concurrency.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from knnvocab.client import Client, ServiceError
from knnvocab.config import Settings
from knnvocab.embed.spec import EncoderSpec
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.tokens import create_token
from knnvocab.workspace import Workspace
from tests.faults.helpers import (
    assert_consistent,
    data_root,
    env_of,
    knnvocab,
    ok,
    one_line_error,
    sqlite_home,
    versions,
    wait_for,
)
from tests.service.server import Server

pytestmark = pytest.mark.slow

D = "k"
PAUSE = "change.before_publish:pause"
RETIRE = ("vocab", "retire", D, "bus", "-m", "not needed")


def paused_flag(home: Path) -> Path:
    return home / "fault.change.before_publish.paused"


def test_the_cli_and_the_service_on_one_domain(
    tmp_path: Path, tiny_model: EncoderSpec, labelme_voc: Path
) -> None:
    """The service owns the embedded home; its ingest job holds version 2. The CLI's retire
    (sent to the service) and a client's are refused naming it; once the job publishes,
    the same retire goes through."""
    home = sqlite_home(tmp_path / "home")
    with Workspace(home) as ws:
        options = IngestOptions("voc", dataset_name="photos", min_area=1)
        ingest(ws, D, labelme_voc, options, tiny_model, actor="alice")
        _, secret = create_token(ws, D, "write", actor="tester", name="writer")
    env = env_of(home, KNNVOCAB_DATA_ROOT=str(data_root(tmp_path, labelme_voc)))
    with Server({**env, "KNNVOCAB_FAULT": PAUSE}, tmp_path / "serve.log") as server:
        with Client(server.url, secret) as c:
            job = c.ingest(D, dataset="voc", format="voc", name="more", min_area=1)
            wait_for(paused_flag(home.home).exists, 120, "the job to hold its version")
            refused = knnvocab(home, *RETIRE)
            one_line_error(refused, "domain 'k' has pending version 2: ingest by writer@")
            with pytest.raises(ServiceError) as busy:
                c.retire(D, "bus")
            assert busy.value.status == 409 and "pending version 2" in str(busy.value)
            assert versions(home, D) == [(1, "published", "ingest"), (2, "pending", "ingest")]
            paused_flag(home.home).unlink()
            assert c.wait(job["id"], timeout=120)["state"] == "succeeded"
        ok(knnvocab(home, *RETIRE))
    assert versions(home, D) == [
        (1, "published", "ingest"),
        (2, "published", "ingest"),
        (3, "published", "retire"),
    ]
    assert_consistent(home)


def pending_versions(pg_url: str) -> list[tuple[str, int]]:
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "select d.name, v.number from vocab_version v join domain d "
                    "on d.id = v.domain_id where v.state = 'pending'"
                )
            ).all()
    finally:
        engine.dispose()
    return [(str(name), int(n)) for name, n in rows]


def test_two_services_on_the_scaled_deployment(
    tmp_path: Path, pg_url: str, tiny_model: EncoderSpec, labelme_voc: Path
) -> None:
    """Two `knnvocab serve` processes on one Postgres catalog; A's first ingest of a domain
    holds version 1, B's ingest of it fails naming A's version and takes none. Each has
    its own store (qdrant-client's local mode stands in for the Qdrant server and is one
    process's: none runs here), so this proves the catalog's guarantee."""
    data = data_root(tmp_path, labelme_voc)
    shutil.copy(tiny_model.model, data / "tiny.json")
    shutil.copy(str(tiny_model.checkpoint), data / "tiny.pt")
    homes = [Settings(tmp_path / name, pg_url, ":memory:", user="tester") for name in "ab"]
    with Workspace(homes[0]) as ws:
        _, ops = create_token(ws, None, "admin", actor="tester", name="ops")
    body = {"dataset": "voc", "format": "voc", "model": "tiny.json", "checkpoint": "tiny.pt"}
    env = [env_of(h, KNNVOCAB_DATA_ROOT=str(data)) for h in homes]
    a = Server({**env[0], "KNNVOCAB_FAULT": PAUSE}, tmp_path / "a.log").launch()
    b = Server(env[1], tmp_path / "b.log").launch()
    try:
        a.ready(), b.ready()
        with Client(a.url, ops) as first, Client(b.url, ops) as second:
            first.create_domain("port")
            held = first.ingest("port", **body)
            wait_for(paused_flag(homes[0].home).exists, 120, "A's job to hold its version")
            refused = second.wait(second.ingest("port", **body)["id"], timeout=120)
            assert refused["state"] == "failed", refused
            assert "domain 'port' has pending version 1: ingest by ops@" in refused["error"]
            assert pending_versions(pg_url) == [("port", 1)]
            paused_flag(homes[0].home).unlink()
            assert first.wait(held["id"], timeout=120)["state"] == "succeeded"
            seen = [(v["number"], v["state"]) for v in second.versions("port")]
            assert seen == [(1, "published")]
    finally:
        a.stop()
        b.stop()
    assert pending_versions(pg_url) == []
