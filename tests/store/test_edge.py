"""What only the embedded store does: persistence, one process per shard, one shard per
collection shared by every domain."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from knnvocab.errors import StoreBusyError
from knnvocab.store.base import PointFilter, StoredPoint, point_id
from knnvocab.store.edge import EdgeStore
from knnvocab.store.payload import PointPayload
from tests.store.test_conformance import COLLECTION, DIM, make_points, unit


def test_points_survive_close_and_reopen(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path)
    store.ensure_collection(COLLECTION, DIM)
    store.insert(COLLECTION, "alpha", make_points("alpha", unit(np.random.default_rng(0), 20)))
    store.close()
    reopened = EdgeStore(tmp_path)
    assert reopened.count(COLLECTION, PointFilter("alpha")) == 20
    assert reopened.domains(COLLECTION) == ["alpha"]
    reopened.close()


def test_domains_share_one_shard_per_collection(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path)
    store.ensure_collection(COLLECTION, DIM)
    rng = np.random.default_rng(1)
    store.insert(COLLECTION, "alpha", make_points("alpha", unit(rng, 3)))
    store.insert(COLLECTION, "beta", make_points("beta", unit(rng, 3)))
    folders = sorted(p.name for p in (tmp_path / COLLECTION).iterdir() if p.is_dir())
    assert folders == ["shard"]  # no folder, file or memory per domain
    assert (tmp_path / COLLECTION / "shard" / "edge_config.json").is_file()
    store.drop_domain(COLLECTION, "alpha")
    assert store.domains(COLLECTION) == ["beta"]
    assert store.count(COLLECTION, PointFilter("alpha")) == 0
    assert store.count(COLLECTION, PointFilter("beta")) == 3
    store.close()


HOLD = """
import sys, time
from pathlib import Path
from knnvocab.store.edge import EdgeStore
from knnvocab.store.base import PointFilter, StoredPoint, point_id
s = EdgeStore(Path(sys.argv[1]))
s.count(sys.argv[2], PointFilter("alpha"))
print("open", flush=True)
time.sleep(60)
"""


def test_a_shard_open_in_another_process_is_refused_clearly(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path)
    store.ensure_collection(COLLECTION, DIM)
    store.insert(COLLECTION, "alpha", make_points("alpha", unit(np.random.default_rng(2), 3)))
    store.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path), COLLECTION], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        other = EdgeStore(tmp_path)
        with pytest.raises(StoreBusyError, match=f"is open in process {holder.pid}"):
            other.count(COLLECTION, PointFilter("alpha"))
        # one process owns the collection: another domain waits too
        with pytest.raises(StoreBusyError, match="KNNVOCAB_STORE_WAIT"):
            other.insert(COLLECTION, "beta", make_points("beta", unit(np.random.default_rng(3), 2)))
        other.close()
        # a process that may wait gets the store once the holder is done
        threading.Timer(1.0, holder.kill).start()
        started = time.monotonic()
        waiting = EdgeStore(tmp_path, wait=30)
        assert waiting.count(COLLECTION, PointFilter("alpha")) == 3
        assert time.monotonic() - started >= 0.9
        waiting.close()
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


WRITE = """
import sys
from pathlib import Path
import numpy as np
from knnvocab.store.edge import EdgeStore
from knnvocab.store.base import PointFilter, StoredPoint
from tests.store.test_conformance import make_points, unit
s = EdgeStore(Path(sys.argv[1]))
s.count(sys.argv[2], PointFilter("alpha"))
print("open", flush=True)
for i in range(40):
    points = make_points("alpha", unit(np.random.default_rng(100 + i), 3))
    s.insert(sys.argv[2], "alpha", [StoredPoint(f"{p.id[:-6]}{i:06d}", p.vector, p.payload)
                                    for p in points])
    s.flush()
(Path(sys.argv[1]) / "written").touch()
sys.stdin.readline()
s.close()
print("done", flush=True)
"""


def test_a_refused_process_does_not_damage_the_holders_shard(tmp_path: Path) -> None:
    """qdrant-edge lets a second process open a shard another one is writing to (and
    damage its files) at moments; the store's own lock refuses it every time."""
    store = EdgeStore(tmp_path)
    store.ensure_collection(COLLECTION, DIM)
    store.insert(COLLECTION, "alpha", make_points("alpha", unit(np.random.default_rng(2), 3)))
    store.close()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITE, str(tmp_path), COLLECTION],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    attempts = 0
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "open"
        while writer.poll() is None and not (tmp_path / "written").exists():
            other = EdgeStore(tmp_path)
            with pytest.raises(StoreBusyError):
                other.count(COLLECTION, PointFilter("alpha"))
            other.close()
            attempts += 1
        out, err = writer.communicate("\n", timeout=60)
        assert writer.returncode == 0 and out.strip() == "done", err[-2000:]
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.communicate()
    assert attempts > 0
    reopened = EdgeStore(tmp_path)
    assert reopened.count(COLLECTION, PointFilter("alpha")) == 3 + 40 * 3
    reopened.close()


def _random_points(rng: np.random.Generator, n: int, start: int, version: int) -> list[StoredPoint]:
    vectors = rng.standard_normal((n, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        StoredPoint(
            point_id("alpha", "ds", "img", str(start + i), "enc"),
            vectors[i],
            PointPayload("alpha", i % 7, "c", version, "ds", "run", "img", str(start + i), 1),
        )
        for i in range(n)
    ]


def test_exact_search_is_brute_force_and_never_drifts(tmp_path: Path) -> None:
    """On an HNSW-indexed shard, ``exact`` answers are numpy's exact top-k, and a version's
    answers are bit-identical after a later version is ingested and the index rebuilt."""
    rng = np.random.default_rng(7)
    store = EdgeStore(tmp_path)
    store.ensure_collection("big", 512)
    first = _random_points(rng, 8000, 0, version=1)
    for i in range(0, len(first), 4096):
        store.insert("big", "alpha", first[i : i + 4096])
    store.optimize("big", "alpha")
    assert store.indexed_vectors("big", "alpha") == 8000  # HNSW is built: not a plain scan
    queries = _random_points(rng, 32, 10**6, version=0)
    q = np.stack([p.vector for p in queries])
    at_v1 = PointFilter("alpha", visible_at=1)
    before = store.search("big", at_v1, q, 10, exact=True)
    sims = q @ np.stack([p.vector for p in first]).T
    truth = [[first[j].id for j in row] for row in np.argsort(-sims, axis=1)[:, :10]]
    assert [[h.id for h in hits] for hits in before] == truth
    np.testing.assert_allclose(
        [[h.score for h in hits] for hits in before],
        np.sort(sims, axis=1)[:, ::-1][:, :10],
        atol=1e-5,
    )
    store.insert("big", "alpha", _random_points(rng, 4000, 8000, version=2))
    store.optimize("big", "alpha")
    assert store.search("big", at_v1, q, 10, exact=True) == before
    store.close()


def test_searches_without_payloads_give_each_point_its_current_class(tmp_path: Path) -> None:
    """Class ids are looked up once and kept; deleting points forgets them, so an id that
    comes back (a domain deleted and made again) carries its new class."""
    store = EdgeStore(tmp_path)
    store.ensure_collection(COLLECTION, DIM)
    points = make_points("alpha", unit(np.random.default_rng(12), 9))
    store.insert(COLLECTION, "alpha", points)
    q = np.stack([p.vector for p in points])
    flt = PointFilter("alpha", visible_at=1)
    for _ in range(2):  # the second time from what the store kept
        hits = store.search(COLLECTION, flt, q, 1, with_payload=False)
        assert [h[0].class_id for h in hits] == [p.payload.class_id for p in points]
        assert all(h[0].payload is None for h in hits)
    store.drop_domain(COLLECTION, "alpha")
    moved = [replace(p, payload=replace(p.payload, class_id=7)) for p in points]
    store.insert(COLLECTION, "alpha", moved)
    hits = store.search(COLLECTION, flt, q, 1, with_payload=False)
    assert [h[0].class_id for h in hits] == [7] * 9
    store.close()
