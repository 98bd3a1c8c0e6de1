"""One conformance suite, run on both backends: qdrant-edge (embedded) and qdrant-client
against ``QdrantClient(":memory:")`` (the server API)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

from knnvocab.errors import StoreError
from knnvocab.store.base import PointFilter, StoredPoint, VectorStore, point_id
from knnvocab.store.edge import EdgeStore
from knnvocab.store.payload import PointPayload
from knnvocab.store.server import ServerStore

DIM = 16
COLLECTION = "knnvocab_test"


@pytest.fixture(params=["edge", "server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    s: VectorStore
    if request.param == "edge":
        s = EdgeStore(tmp_path / "vectors")
    else:
        s = ServerStore(QdrantClient(location=":memory:"))
    s.ensure_collection(COLLECTION, DIM)
    yield s
    s.close()


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_points(domain: str, vectors: np.ndarray, **payload: Any) -> list[StoredPoint]:
    points = []
    for i, v in enumerate(vectors):
        body: dict[str, Any] = {
            "domain": domain,
            "class_id": i % 3,
            "label": f"c{i % 3}",
            "added_in": 1,
            "dataset": "ds",
            "run_id": "run",
            "image": f"img{i // 4}",
            "instance": f"obj{i}",
            "area": 10,
        }
        body.update({k: (v(i) if callable(v) else v) for k, v in payload.items()})
        pid = point_id(domain, "ds", "img", f"obj{i}", "enc")
        points.append(StoredPoint(pid, v, PointPayload(**body)))
    return points


def test_point_ids_are_deterministic_uuid5() -> None:
    a = point_id("d", "ds", "img1", "obj1", "fp")
    assert a == point_id("d", "ds", "img1", "obj1", "fp")
    assert a != point_id("d2", "ds", "img1", "obj1", "fp")
    assert a[14] == "5"  # UUID version 5


def test_filter_requires_a_domain() -> None:
    with pytest.raises(ValueError, match="domain is required"):
        PointFilter(domain="")


def test_insert_count_and_counts_by_class(store: VectorStore) -> None:
    vectors = unit(np.random.default_rng(0), 30)
    store.insert(COLLECTION, "alpha", make_points("alpha", vectors))
    assert store.count(COLLECTION, PointFilter("alpha")) == 30
    assert store.counts_by(COLLECTION, PointFilter("alpha"), "class_id") == {0: 10, 1: 10, 2: 10}
    assert store.count(COLLECTION, PointFilter("alpha", class_ids=(0, 2))) == 20
    assert store.count(COLLECTION, PointFilter("beta")) == 0


def test_insert_never_overwrites_an_existing_id(store: VectorStore) -> None:
    vectors = unit(np.random.default_rng(1), 4)
    store.insert(COLLECTION, "alpha", make_points("alpha", vectors))
    store.insert(COLLECTION, "alpha", make_points("alpha", vectors[::-1].copy(), added_in=7))
    assert store.count(COLLECTION, PointFilter("alpha")) == 4
    assert store.count(COLLECTION, PointFilter("alpha", added_in=7)) == 0


def test_existing_ids(store: VectorStore) -> None:
    points = make_points("alpha", unit(np.random.default_rng(10), 3))
    store.insert(COLLECTION, "alpha", points[:2])
    ids = [p.id for p in points]
    assert store.existing(COLLECTION, "alpha", ids) == set(ids[:2])
    assert store.existing(COLLECTION, "beta", ids) == set()
    assert store.existing(COLLECTION, "alpha", []) == set()


def test_insert_refuses_a_point_of_another_domain(store: VectorStore) -> None:
    points = make_points("alpha", unit(np.random.default_rng(2), 1))
    with pytest.raises(StoreError, match="not 'beta'"):
        store.insert(COLLECTION, "beta", points)


def test_search_is_exact_on_small_data_and_sorted(store: VectorStore) -> None:
    rng = np.random.default_rng(3)
    vectors = unit(rng, 50)
    points = make_points("alpha", vectors)
    store.insert(COLLECTION, "alpha", points)
    queries = unit(rng, 5)
    results = store.search(COLLECTION, PointFilter("alpha", visible_at=1), queries, k=7)
    assert len(results) == 5
    for q, hits in zip(queries, results, strict=True):
        expected = np.argsort(-(vectors @ q))[:7]
        assert [h.id for h in hits] == [points[i].id for i in expected]
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        np.testing.assert_allclose(scores, np.sort(vectors @ q)[::-1][:7], atol=1e-5)
        assert all(h.payload.domain == "alpha" for h in hits)


def test_version_visibility(store: VectorStore) -> None:
    vectors = unit(np.random.default_rng(4), 12)
    # points 0-3 added in v1, 4-7 in v2, 8-11 in v3; points 0-1 removed in v3
    points = make_points("alpha", vectors, added_in=lambda i: 1 + i // 4)
    points[:2] = [replace(p, payload=replace(p.payload, removed_in=3)) for p in points[:2]]
    store.insert(COLLECTION, "alpha", points)
    visible = {v: store.count(COLLECTION, PointFilter("alpha", visible_at=v)) for v in (0, 1, 2, 3)}
    assert visible == {0: 0, 1: 4, 2: 8, 3: 10}
    hits = store.search(COLLECTION, PointFilter("alpha", visible_at=1), vectors[:1], k=20)[0]
    assert {h.payload.added_in for h in hits} == {1}
    assert len(hits) == 4
    hits = store.search(COLLECTION, PointFilter("alpha", visible_at=3), vectors[:1], k=20)[0]
    assert all(h.payload.removed_in is None for h in hits)
    assert store.count(COLLECTION, PointFilter("alpha", live=False)) == 2
    assert store.count(COLLECTION, PointFilter("alpha", live=True)) == 10
    assert store.count(COLLECTION, PointFilter("alpha", added_after=1)) == 8
    assert store.count(COLLECTION, PointFilter("alpha", removed_in=3)) == 2


def test_domains_never_see_each_other(store: VectorStore) -> None:
    rng = np.random.default_rng(5)
    a, b = unit(rng, 10), unit(rng, 10)
    store.insert(COLLECTION, "alpha", make_points("alpha", a))
    store.insert(COLLECTION, "beta", make_points("beta", b))
    for domain, own in (("alpha", a), ("beta", b)):
        # query with the other domain's exact vectors: still only own points come back
        other = b if domain == "alpha" else a
        for hits in store.search(COLLECTION, PointFilter(domain, visible_at=1), other, k=20):
            assert len(hits) == 10
            assert {h.payload.domain for h in hits} == {domain}
        assert store.count(COLLECTION, PointFilter(domain)) == len(own)
    store.delete(COLLECTION, PointFilter("alpha"))
    assert store.count(COLLECTION, PointFilter("alpha")) == 0
    assert store.count(COLLECTION, PointFilter("beta")) == 10


def test_delete_and_hide_by_filter(store: VectorStore) -> None:
    vectors = unit(np.random.default_rng(6), 9)
    store.insert(COLLECTION, "alpha", make_points("alpha", vectors, dataset=lambda i: f"ds{i % 2}"))
    store.set_removed_in(COLLECTION, PointFilter("alpha", class_ids=(1,)), 2)
    assert store.count(COLLECTION, PointFilter("alpha", removed_in=2)) == 3
    assert store.count(COLLECTION, PointFilter("alpha", visible_at=2)) == 6
    assert store.count(COLLECTION, PointFilter("alpha", visible_at=1)) == 9
    store.delete(COLLECTION, PointFilter("alpha", dataset="ds0"))
    assert store.count(COLLECTION, PointFilter("alpha")) == 4
    assert store.counts_by(COLLECTION, PointFilter("alpha"), "dataset") == {"ds1": 4}


def test_scroll_returns_every_point_with_its_vector(store: VectorStore) -> None:
    vectors = unit(np.random.default_rng(7), 2500)  # more than one scroll page
    points = make_points("alpha", vectors)
    store.insert(COLLECTION, "alpha", points)
    seen = {p.id: p for p in store.scroll(COLLECTION, PointFilter("alpha"), with_vectors=True)}
    assert len(seen) == 2500
    by_id = {p.id: p for p in points}
    for pid, p in list(seen.items())[:50]:
        np.testing.assert_allclose(p.vector, by_id[pid].vector, atol=1e-6)
        assert p.payload == by_id[pid].payload
    assert sum(1 for _ in store.scroll(COLLECTION, PointFilter("alpha", class_ids=(0,)))) == 834


def test_collection_dimension_is_checked(store: VectorStore) -> None:
    store.ensure_collection(COLLECTION, DIM)
    with pytest.raises(StoreError, match=f"{DIM}-d"):
        store.ensure_collection(COLLECTION, DIM + 1)


def test_empty_domain_search_and_counts(store: VectorStore) -> None:
    hits = store.search(
        COLLECTION, PointFilter("nobody", visible_at=5), unit(np.random.default_rng(8), 2), k=3
    )
    assert hits == [[], []]
    assert store.counts_by(COLLECTION, PointFilter("nobody"), "class_id") == {}


def test_optimize_keeps_results(store: VectorStore) -> None:
    rng = np.random.default_rng(9)
    vectors = unit(rng, 300)
    store.insert(COLLECTION, "alpha", make_points("alpha", vectors))
    q = unit(rng, 3)
    before = store.search(COLLECTION, PointFilter("alpha", visible_at=1), q, k=5)
    store.optimize(COLLECTION, "alpha")
    after = store.search(COLLECTION, PointFilter("alpha", visible_at=1), q, k=5)
    assert [[h.id for h in r] for r in before] == [[h.id for h in r] for r in after]


def test_make_live_again_by_filter(store: VectorStore) -> None:
    vectors = unit(np.random.default_rng(11), 9)
    store.insert(COLLECTION, "alpha", make_points("alpha", vectors))
    store.insert(COLLECTION, "beta", make_points("beta", vectors, removed_in=2))
    store.set_removed_in(COLLECTION, PointFilter("alpha", class_ids=(0, 1)), 2)
    store.set_removed_in(COLLECTION, PointFilter("alpha", class_ids=(2,)), 3)
    store.set_removed_in(COLLECTION, PointFilter("alpha", removed_in=2, class_ids=(0,)), None)
    assert store.count(COLLECTION, PointFilter("alpha", live=True)) == 3
    removed = store.counts_by(COLLECTION, PointFilter("alpha", live=False), "removed_in")
    assert removed == {2: 3, 3: 3}
    assert store.count(COLLECTION, PointFilter("alpha", visible_at=3)) == 3
    cleared = list(store.scroll(COLLECTION, PointFilter("alpha", class_ids=(0,))))
    assert all(p.payload.removed_in is None for p in cleared)
    assert cleared[0].payload.added_in == 1  # other fields untouched
    assert store.count(COLLECTION, PointFilter("beta", removed_in=2)) == 9  # other tenant


def test_domains_and_drop_domain(store: VectorStore) -> None:
    rng = np.random.default_rng(12)
    store.insert(COLLECTION, "alpha", make_points("alpha", unit(rng, 4)))
    store.insert(COLLECTION, "beta", make_points("beta", unit(rng, 5)))
    assert store.domains(COLLECTION) == ["alpha", "beta"]
    assert store.domains("no_such_collection") == []
    store.drop_domain(COLLECTION, "alpha")
    assert store.domains(COLLECTION) == ["beta"]
    assert store.count(COLLECTION, PointFilter("alpha")) == 0
    assert store.count(COLLECTION, PointFilter("beta")) == 5
    store.drop_domain(COLLECTION, "never-existed")
    store.drop_domain("no_such_collection", "alpha")
