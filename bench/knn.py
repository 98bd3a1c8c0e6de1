"""Filtered kNN: the embedded store (`EdgeStore`, qdrant-edge) against exact numpy brute force.

Per size (default 100k, 300k, 1M instances, 512-d, 10 equal domains, one shard each): fill
an `EdgeStore` in a temp dir (batches of 4096), `optimize()` every domain (HNSW build), then
time ONE batch of 256 queries (k = 10) filtered to one domain visible at version 4 (drops
what version 5 added and two classes retired in version 4) against exact numpy brute force
on the same data in the same process. Prints insert / optimize seconds, median batch
latencies, store/brute ratio, recall@10 against the exact top 10 (all queries; queries of
retired classes alone), and whether the targets are met: recall@10 >= 0.99 at every size,
store faster than brute force at 1M. The last columns time the store's exhaustive search
(`exact=True`, what `segment --exact` uses) on the same batch, with its recall (1.0).

Data: synthetic CLIP-like unit vectors (`domain_model`); queries are fresh samples of the
query domain's classes (new instances, never stored points). Brute force times the boolean
mask (domain & version) over all N rows, the gather of the visible rows, one float32 BLAS
matmul and argpartition. Timing: a warm-up each, then --repeat rounds alternating brute
force and store; medians. Details and results: bench/README.md.

Run:  .venv/bin/python bench/knn.py                    # 100k, 300k, 1M (~25 min, 2 cores)
      .venv/bin/python bench/knn.py --quick            # smoke run, 20k
      .venv/bin/python bench/knn.py --sizes 1000000 --hnsw-ef 96 --json knn.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from knnvocab.store import edge
from knnvocab.store.base import PointFilter, StoredPoint, point_id
from knnvocab.store.edge import EdgeStore
from knnvocab.store.payload import PointPayload

COLLECTION = "bench_knn"
DOMAINS, CLASSES, SUPERCLASSES, VERSIONS, RANK = 10, 100, 10, 5, 32
QUERY_DOMAIN, QUERY_VERSION, RETIRED = 0, 4, 2
LIVE = 127  # removed_in of a live point: never <= a version
INSERT_BATCH, CHUNK = 4096, 65_536


@dataclass(frozen=True)
class DomainModel:
    """(C, D) unit class centroids, (D, RANK) orthonormal variation basis, (C,) class odds."""

    centroids: np.ndarray
    basis: np.ndarray
    class_p: np.ndarray


@dataclass
class Corpus:
    """N instances: (N, D) float32 unit vectors; (N,) int8 domain, added_in, removed_in
    (LIVE while live); (N,) int16 class_id."""

    vectors: np.ndarray
    domain: np.ndarray
    class_id: np.ndarray
    added_in: np.ndarray
    removed_in: np.ndarray


@dataclass
class SizeResult:
    """One size: store build, HNSW-indexed / stored points, points the filter keeps,
    median batch latencies, mean recall@k (all queries; those of retired classes)."""

    size: int
    insert_s: float
    optimize_s: float
    indexed: int
    points: int
    visible: int
    store_ms: float
    brute_ms: float
    recall: float
    recall_retired: float
    exact_ms: float
    exact_recall: float

    @property
    def ratio(self) -> float:
        return self.store_ms / self.brute_ms


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, float32."""
    out: np.ndarray = (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)
    return out


def domain_model(dim: int, seed: int, domain: int) -> DomainModel:
    """Class centroids = shared mean (CLIP's cone) + superclass + own direction: cosine
    0.76 between siblings (car / truck), 0.53 otherwise; class c is in superclass
    c % SUPERCLASSES. Class frequencies are long-tailed (Zipf-like, exponent 0.8)."""
    mean = unit(np.random.default_rng(seed).standard_normal(dim))
    rng = np.random.default_rng([seed, domain, 0])
    supers = unit(rng.standard_normal((SUPERCLASSES, dim)))
    own = unit(rng.standard_normal((CLASSES, dim)))
    centroids = unit(1.5 * mean + supers[np.arange(CLASSES) % SUPERCLASSES] + own)
    basis = np.linalg.qr(rng.standard_normal((dim, RANK)))[0].astype(np.float32)
    odds = 1.0 / np.arange(1, CLASSES + 1) ** 0.8
    return DomainModel(centroids, basis, odds / odds.sum())


def retired_classes(seed: int, domain: int) -> np.ndarray:
    """The RETIRED classes (among the 20 most frequent) retired in QUERY_VERSION."""
    return np.random.default_rng([seed, domain, 3]).choice(20, RETIRED, replace=False)


def sample(model: DomainModel, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """m instances of a domain: (m, D) float32 unit vectors, (m,) int64 class ids."""
    dim = model.basis.shape[0]
    cls = rng.choice(CLASSES, m, p=model.class_p)
    x = model.centroids[cls]
    x += rng.standard_normal((m, RANK), dtype=np.float32) @ (model.basis.T * (0.7 / np.sqrt(RANK)))
    x += rng.standard_normal((m, dim), dtype=np.float32) * np.float32(0.35 / np.sqrt(dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, cls


def make_corpus(n: int, dim: int, seed: int) -> Corpus:
    """n // DOMAINS instances per domain, generated in chunks into one preallocated matrix."""
    per = n // DOMAINS
    corpus = Corpus(
        np.empty((per * DOMAINS, dim), np.float32),
        np.repeat(np.arange(DOMAINS, dtype=np.int8), per),
        np.empty(per * DOMAINS, np.int16),
        np.empty(per * DOMAINS, np.int8),
        np.full(per * DOMAINS, LIVE, np.int8),
    )
    for d in range(DOMAINS):
        model, rng = domain_model(dim, seed, d), np.random.default_rng([seed, d, 1])
        for lo in range(d * per, (d + 1) * per, CHUNK):
            hi = min(lo + CHUNK, (d + 1) * per)
            corpus.vectors[lo:hi], corpus.class_id[lo:hi] = sample(model, hi - lo, rng)
        rows = slice(d * per, (d + 1) * per)
        corpus.added_in[rows] = rng.integers(1, VERSIONS + 1, per)
        retired = np.isin(corpus.class_id[rows], retired_classes(seed, d))
        corpus.added_in[rows][retired] = rng.integers(1, QUERY_VERSION, int(retired.sum()))
        corpus.removed_in[rows][retired] = QUERY_VERSION
    return corpus


def brute_force(corpus: Corpus, queries: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """Exact top-k rows, best first, (Q, k) int64; and the number of visible rows."""
    mask = (
        (corpus.domain == QUERY_DOMAIN)
        & (corpus.added_in <= QUERY_VERSION)
        & (corpus.removed_in > QUERY_VERSION)
    )
    rows = np.flatnonzero(mask)
    scores = queries @ corpus.vectors[rows].T
    top = np.argpartition(scores, -k, axis=1)[:, -k:]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
    return rows[np.take_along_axis(top, order, axis=1)], len(rows)


def stored_point(corpus: Corpus, row: int) -> StoredPoint:
    domain, cls = f"d{corpus.domain[row]}", int(corpus.class_id[row])
    added = int(corpus.added_in[row])
    removed = int(corpus.removed_in[row])
    payload = PointPayload(
        domain=domain,
        class_id=cls,
        label=f"class{cls}",
        added_in=added,
        dataset="synthetic",
        run_id=f"run{added}",
        image=f"img{row // 8}",
        instance=str(row),
        area=500 + row % 5000,
        removed_in=None if removed == LIVE else removed,
    )
    pid = point_id(domain, "synthetic", payload.image, payload.instance, "bench")
    return StoredPoint(pid, corpus.vectors[row], payload)


def fill_store(store: EdgeStore, corpus: Corpus) -> float:
    """Insert every point, a domain at a time in batches; seconds, flush included."""
    start = time.perf_counter()
    for d in range(DOMAINS):
        rows = np.flatnonzero(corpus.domain == d)
        for lo in range(0, len(rows), INSERT_BATCH):
            batch = [stored_point(corpus, int(r)) for r in rows[lo : lo + INSERT_BATCH]]
            store.insert(COLLECTION, f"d{d}", batch)
    store.flush()
    return time.perf_counter() - start


def optimize_store(store: EdgeStore) -> tuple[float, int, int]:
    """optimize() the collection's shard (every domain's graph); (seconds, HNSW-indexed
    vectors, points)."""
    start = time.perf_counter()
    store.optimize(COLLECTION, "d0")
    seconds = time.perf_counter() - start
    points = sum(store.count(COLLECTION, PointFilter(f"d{d}")) for d in range(DOMAINS))
    return seconds, store.indexed_vectors(COLLECTION, "d0"), points


def store_search(store: EdgeStore, queries: np.ndarray, k: int, exact: bool = False) -> np.ndarray:
    """The store's top-k rows, best first, (Q, k) int64 (-1 where fewer than k hits);
    ``exact``: the store's exhaustive float32 scan (`segment --exact`) instead of HNSW."""
    flt = PointFilter(f"d{QUERY_DOMAIN}", visible_at=QUERY_VERSION)
    hits = store.search(COLLECTION, flt, queries, k, exact=exact)
    rows = np.full((len(queries), k), -1, np.int64)
    for i, found in enumerate(hits):
        rows[i, : len(found)] = [int(h.payload.instance) for h in found]
    return rows


def median_ms(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median wall-clock ms per function: one warm-up each, then alternating rounds."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """(Q,) fraction of each query's exact top k that the store found."""
    k = exact.shape[1]
    return np.array([len(set(f) & set(e)) / k for f, e in zip(found, exact, strict=True)])


def run_size(size: int, args: argparse.Namespace) -> SizeResult:
    corpus = make_corpus(size, args.dim, args.seed)
    rng = np.random.default_rng([args.seed, QUERY_DOMAIN, 2])
    queries, cls = sample(domain_model(args.dim, args.seed, QUERY_DOMAIN), args.queries, rng)
    retired = np.isin(cls, retired_classes(args.seed, QUERY_DOMAIN))
    with tempfile.TemporaryDirectory(prefix="knnbench-") as tmp:
        if args.hnsw_ef:  # the one tuning both backends read (knnvocab/store/tuning.py)
            edge.TUNING = replace(edge.TUNING, hnsw_ef=args.hnsw_ef)
        store = EdgeStore(Path(tmp))
        try:
            store.ensure_collection(COLLECTION, args.dim)
            insert_s = fill_store(store, corpus)
            optimize_s, indexed, points = optimize_store(store)
            exact, visible = brute_force(corpus, queries, args.k)
            recall = recall_at_k(store_search(store, queries, args.k), exact)
            exact_recall = recall_at_k(store_search(store, queries, args.k, exact=True), exact)
            ms = median_ms(
                {
                    "brute": lambda: brute_force(corpus, queries, args.k),
                    "store": lambda: store_search(store, queries, args.k),
                    "exact": lambda: store_search(store, queries, args.k, exact=True),
                },
                args.repeat,
            )
        finally:
            store.close()
    timings = (ms["store"], ms["brute"], float(recall.mean()), float(recall[retired].mean()))
    exact_run = (ms["exact"], float(exact_recall.mean()))
    return SizeResult(size, insert_s, optimize_s, indexed, points, visible, *timings, *exact_run)


HEADER = (
    f"{'size':>9} {'insert s':>9} {'optim s':>8} {'indexed':>9} {'visible':>8} {'store ms':>9} "
    f"{'brute ms':>9} {'store/brute':>11} {'recall@10':>9} {'retired':>7} {'exact ms':>9} "
    f"{'exact/brute':>11} {'exact rec':>9}"
)


def row(r: SizeResult) -> str:
    return (
        f"{r.size:>9} {r.insert_s:>9.1f} {r.optimize_s:>8.1f} {r.indexed:>9} {r.visible:>8} "
        f"{r.store_ms:>9.1f} {r.brute_ms:>9.1f} {r.ratio:>11.2f} {r.recall:>9.4f} "
        f"{r.recall_retired:>7.3f} {r.exact_ms:>9.1f} {r.exact_ms / r.brute_ms:>11.2f} "
        f"{r.exact_recall:>9.4f}"
    )


def targets(results: list[SizeResult]) -> dict[str, bool | None]:
    """Print whether each target is met; None: not measured (no size >= 1M)."""
    min_recall = min(r.recall for r in results)
    at_1m = [r.ratio for r in results if r.size >= 1_000_000]
    met = {"recall": min_recall >= 0.99, "faster_at_1m": max(at_1m) < 1 if at_1m else None}
    verdict = {True: "met", False: "NOT met", None: "not measured"}
    print(
        f"target recall@10 >= 0.99 at every size: {verdict[met['recall']]} (min {min_recall:.4f})"
    )
    print(
        f"target store faster than brute force at 1M: {verdict[met['faster_at_1m']]} "
        + (f"(store/brute {max(at_1m):.2f})" if at_1m else "(no size >= 1M in --sizes)")
    )
    return met


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100000,300000,1000000", help="comma-separated N")
    p.add_argument("--queries", type=int, default=256, help="queries in the batch")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--repeat", type=int, default=15, help="timed rounds (median reported)")
    p.add_argument("--hnsw-ef", type=int, default=None, help="search hnsw_ef (default: TUNING)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke run: 20k, 3 rounds")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    args = p.parse_args()
    if args.quick:
        args.sizes, args.repeat = "20000", 3
    return args


def main() -> None:
    args = parse_args()
    print(HEADER, flush=True)
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        results.append(run_size(size, args))
        print(row(results[-1]), flush=True)
    met = targets(results)
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        body = {
            "settings": settings,
            "results": [asdict(r) | {"ratio": r.ratio} for r in results],
            "targets": met,
        }
        args.json.write_text(json.dumps(body, indent=2))


if __name__ == "__main__":
    main()
