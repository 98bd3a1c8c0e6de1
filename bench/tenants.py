"""Many tenants in one deployment: what each domain costs, through the library.

N domains (100 and 1,000; 10,000 with --large) of P instances (default 200, 512-d random
unit vectors) are written into one embedded deployment (SQLite catalog + qdrant-edge), each
as a published version through the versioned-change mechanism — what an ingest does,
without the encoder. Then a fresh workspace queries every domain (16 queries, k = 10, at
its head version) and the script prints, per domain:

* resident memory of the querying process beyond the vectors themselves (its RSS growth
  while it opens the store and queries every domain, less N × P × D × 4 bytes), MB;
* disk under the store folder, real and apparent (sparse files), MB;
* write time (one version), ms;
* cold query (the first of each domain in the process) and warm query (median of 5), ms;
* warm ÷ exact numpy search over that domain's own points in the same run.

Targets at 1,000 × 200 (issue 11): overhead ≤ 2 MB, apparent disk ≤ 2 MB, cold ≤ 50 ms,
warm ≤ 1.5 × numpy + 1 ms.

    python bench/tenants.py                 # 100 and 1,000 domains
    python bench/tenants.py --large --json tenants.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from knnvocab.catalog.classes import ensure_classes
from knnvocab.catalog.domains import bind_encoder, create_domain, ensure_encoder
from knnvocab.catalog.versions import ClassChange
from knnvocab.changes import Opening, versioned_change
from knnvocab.config import Settings
from knnvocab.embed.prompts import DEFAULT_PROMPTS
from knnvocab.embed.spec import EncoderInfo, EncoderSpec
from knnvocab.store.base import PointFilter, StoredPoint, point_id
from knnvocab.store.payload import PointPayload
from knnvocab.workspace import Workspace

CLASSES = [f"class{i}" for i in range(10)]
QUERIES, K = 16, 10


def encoder_info(dim: int) -> EncoderInfo:
    """A 512-d encoder identity for synthetic vectors (nothing is ever embedded)."""
    spec = EncoderSpec("ViT-B-16", untrained=True)
    return EncoderInfo(spec, "bench-synthetic", "0" * 64, "0" * 64, dim, 224, 16)


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 1e6


def disk_mb(folder: Path) -> tuple[float, float]:
    def du(*flags: str) -> int:
        out = subprocess.run(
            ["du", "-s", "--block-size=1", *flags, str(folder)], capture_output=True, text=True
        )
        return int(out.stdout.split()[0])

    return du() / 1e6, du("--apparent-size") / 1e6


def write_domain(ws: Workspace, info: EncoderInfo, name: str, vectors: np.ndarray) -> None:
    """Domain ``name``'s version 1 with ``vectors``, as a versioned change."""
    with ws.catalog.session() as s:
        domain = create_domain(s, name, "bench")
        encoder = ensure_encoder(s, info)
        bind_encoder(domain, encoder)
    with versioned_change(ws, name, "ingest", "bench", Opening(encoder=encoder)) as change:
        with ws.catalog.session() as s:
            classes = ensure_classes(s, change.load(s)[0], CLASSES, change.number, DEFAULT_PROMPTS)
            pks = {c.class_id: (c.id, c.name) for c in classes.values()}
        ids = sorted(pks)
        points = [
            StoredPoint(
                point_id(name, "synthetic", f"img{i // 8}", str(i), info.fingerprint),
                v,
                PointPayload(
                    name,
                    ids[i % 10],
                    pks[ids[i % 10]][1],
                    change.number,
                    "synthetic",
                    change.run_id,
                    f"img{i // 8}",
                    str(i),
                    1000,
                ),
            )
            for i, v in enumerate(vectors)
        ]
        ws.store.insert(change.collection, name, points)
        counts: dict[int, int] = {}
        for p in points:
            counts[p.payload.class_id] = counts.get(p.payload.class_id, 0) + 1
        ws.store.flush()
        changes = {pks[c][0]: ClassChange(added=n) for c, n in counts.items()}
        change.publish(changes, {"instances": len(points)}, {"bench": True})


def search(ws: Workspace, collection: str, name: str, q: np.ndarray) -> None:
    flt = PointFilter(name, visible_at=1)
    try:
        ws.store.search(collection, flt, q, K, with_payload=False)  # type: ignore[call-arg]
    except TypeError:  # the store before issue 11 always returned full payloads
        ws.store.search(collection, flt, q, K)


def numpy_ms(vectors: np.ndarray, q: np.ndarray) -> float:
    times = []
    for _ in range(5):
        t = time.perf_counter()
        scores = q @ vectors.T
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        np.take_along_axis(scores, top, axis=1).argsort(axis=1)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def run(n: int, p: int, dim: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    data = {}
    with tempfile.TemporaryDirectory(prefix="knnvocab-tenants-") as tmp:
        home = Path(tmp)
        settings = Settings(
            home=home, database_url=f"sqlite:///{home / 'catalog.sqlite3'}", user="bench"
        )
        info = encoder_info(dim)
        writes = []
        with Workspace(settings) as ws:
            ws.store.ensure_collection(info.collection, dim)
            for d in range(n):
                v = rng.standard_normal((p, dim)).astype(np.float32)
                v /= np.linalg.norm(v, axis=1, keepdims=True)
                data[d] = v
                t = time.perf_counter()
                write_domain(ws, info, f"t{d:05d}", v)
                writes.append(time.perf_counter() - t)
            t = time.perf_counter()
            ws.store.optimize(info.collection, "t00000")  # what every ingest's publish runs
            optimized = time.perf_counter() - t
        real, apparent = disk_mb(home / "vectors")
        before = rss_mb()
        cold, warm, exact = [], [], []
        with Workspace(settings) as ws:
            t = time.perf_counter()
            ws.store.count(info.collection, PointFilter("t00000"))  # opens the store
            opened = time.perf_counter() - t
            for d in range(n):
                q = data[d][:QUERIES] + rng.normal(0, 0.02, (QUERIES, dim)).astype(np.float32)
                t = time.perf_counter()
                search(ws, info.collection, f"t{d:05d}", q)
                cold.append(time.perf_counter() - t)
                times = []
                for _ in range(5):
                    t = time.perf_counter()
                    search(ws, info.collection, f"t{d:05d}", q)
                    times.append(time.perf_counter() - t)
                warm.append(statistics.median(times))
                exact.append(numpy_ms(data[d], q))
            grown = rss_mb() - before
    vectors_mb = n * p * dim * 4 / 1e6
    warm_ms, exact_ms = statistics.median(warm) * 1e3, statistics.median(exact)
    return {
        "domains": n,
        "instances": p,
        "overhead_mb_per_domain": round((grown - vectors_mb) / n, 3),
        "disk_real_mb_per_domain": round(real / n, 3),
        "disk_apparent_mb_per_domain": round(apparent / n, 3),
        "write_ms_per_domain": round(statistics.median(writes) * 1e3, 1),
        "optimize_s": round(optimized, 2),
        "open_ms": round(opened * 1e3, 1),
        "cold_ms": round(statistics.median(cold) * 1e3, 2),
        "cold_p99_ms": round(float(np.percentile(cold, 99)) * 1e3, 2),
        "warm_ms": round(warm_ms, 3),
        "numpy_ms": round(exact_ms, 3),
        "warm_over_numpy": round(warm_ms / exact_ms, 2),
        "warm_target_ms": round(1.5 * exact_ms + 1.0, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domains", default="100,1000", help="comma-separated domain counts")
    parser.add_argument("--large", action="store_true", help="also 10,000 domains")
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    sizes = [int(x) for x in args.domains.split(",")] + ([10_000] if args.large else [])
    rows = []
    cols = (
        "domains",
        "overhead_mb_per_domain",
        "disk_real_mb_per_domain",
        "disk_apparent_mb_per_domain",
        "write_ms_per_domain",
        "optimize_s",
        "open_ms",
        "cold_ms",
        "cold_p99_ms",
        "warm_ms",
        "numpy_ms",
        "warm_over_numpy",
        "warm_target_ms",
    )
    print(" ".join(f"{c:>12.12}" for c in cols))
    for n in sizes:
        row = run(n, args.instances, args.dim, args.seed)
        rows.append(row)
        print(" ".join(f"{row[c]:>12}" for c in cols), flush=True)
    for row in rows:
        if row["domains"] == 1000:
            checks = {
                "resident overhead <= 2 MB/domain": row["overhead_mb_per_domain"] <= 2,
                "apparent disk <= 2 MB/domain": row["disk_apparent_mb_per_domain"] <= 2,
                "cold query <= 50 ms": row["cold_ms"] <= 50,
                "warm <= 1.5x numpy + 1 ms": row["warm_ms"] <= row["warm_target_ms"],
            }
            for what, met in checks.items():
                print(f"target {what}: {'met' if met else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
