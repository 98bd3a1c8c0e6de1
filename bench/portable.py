"""Export (and import) of one domain as a portable archive: memory stays flat as it grows.

A synthetic domain of N points (10,000 and 100,000; 512-d random unit vectors, one
published version written through the versioned-change mechanism, as bench/tenants.py
does) is exported by a fresh process, and the archive imported by another into an empty
deployment. Each reports:

* heap: the most the export / import code held at once (tracemalloc: Python objects and
  numpy arrays, plus the Arrow memory pool's peak) — flat means 100k ÷ 10k ≈ 1 (the
  vectors alone are 20 MB and 200 MB);
* rss: the process's peak RSS less its RSS before, which also counts the store's own
  memory (qdrant-edge pages the shard's vectors in while scrolling; on import it inserts
  and builds the HNSW index, as an ingest does);
* seconds (slowed by tracemalloc), and on import the part spent in the store's optimize.

Run on 2026-12-01 (16 CPUs, other work running): heap 63.0 / 63.0 MB export and
59.8 / 59.9 MB import at 10k / 100k (ratio 1.00); export 116 s at 100k under tracemalloc
(26 s without), import 384 s of which 263 s the store's index build.

    python -m bench.portable                  # 10k and 100k
    python -m bench.portable --sizes 10000,100000,300000 --json portable.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.tenants import encoder_info, write_domain
from knnvocab.config import Settings
from knnvocab.workspace import Workspace

NAME = "bench"


def settings(root: Path) -> Settings:
    return Settings(root, f"sqlite:///{root / 'catalog.sqlite3'}", user="bench")


def make_domain(root: Path, n: int, dim: int, seed: int) -> None:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    info = encoder_info(dim)
    with Workspace(settings(root)) as ws:
        ws.store.ensure_collection(info.collection, dim)
        write_domain(ws, info, NAME, vectors)


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 1e6


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def measure(action: str, root: Path, archive: Path) -> dict[str, float]:
    """In this (fresh) process: open the workspace and the store, then export or import.

    ``heap_peak_mb``: the most the export / import code held at once, Python objects and
    numpy arrays (tracemalloc) plus Arrow buffers (its memory pool's peak) — what must
    stay flat. ``rss_peak_mb``: the process's peak RSS less its RSS before, which also
    counts the store's own memory (qdrant-edge loads a shard and builds its index)."""
    import tracemalloc

    import pyarrow as pa

    from knnvocab.catalog.domains import get_domain
    from knnvocab.portable import export_domain, import_domain
    from knnvocab.store.base import PointFilter

    with Workspace(settings(root)) as ws:
        if action == "export":
            with ws.catalog.session() as s:
                encoder = get_domain(s, NAME).encoder
                assert encoder is not None
            ws.store.count(encoder.collection, PointFilter(NAME))  # open the shard first
        optimizing = [0.0]
        optimize = ws.store.optimize

        def timed(collection: str, domain: str) -> None:
            start = time.perf_counter()
            optimize(collection, domain)
            optimizing[0] += time.perf_counter() - start

        ws.store.optimize = timed  # type: ignore[method-assign]
        before = rss_mb()
        arrow_before = pa.default_memory_pool().max_memory()
        tracemalloc.start()
        start = time.perf_counter()
        if action == "export":
            export_domain(ws, NAME, archive)
        else:
            import_domain(ws, archive, actor="bench")
        seconds = time.perf_counter() - start
        _, heap = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        arrow = pa.default_memory_pool().max_memory() - arrow_before
        return {
            "heap_peak_mb": round((heap + arrow) / 1e6, 1),
            "rss_peak_mb": round(max(peak_mb() - before, 0.0), 1),
            "seconds": round(seconds, 2),
            "optimize_s": round(optimizing[0], 2),
        }


def child(action: str, root: Path, archive: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.portable", "--child", action, str(root), str(archive)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(n: int, dim: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="knnvocab-portable-") as tmp:
        source, target, archive = Path(tmp) / "source", Path(tmp) / "target", Path(tmp) / "a.tar"
        make_domain(source, n, dim, seed)
        exported = child("export", source, archive)
        size_mb = archive.stat().st_size / 1e6
        imported = child("import", target, archive)
    return {
        "points": n,
        "vectors_mb": round(n * dim * 4 / 1e6, 1),
        "archive_mb": round(size_mb, 1),
        "export_heap_mb": exported["heap_peak_mb"],
        "export_rss_mb": exported["rss_peak_mb"],
        "export_s": exported["seconds"],
        "import_heap_mb": imported["heap_peak_mb"],
        "import_rss_mb": imported["rss_peak_mb"],
        "import_s": imported["seconds"],
        "import_optimize_s": imported["optimize_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated point counts")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument(
        "--child", nargs=3, metavar=("ACTION", "HOME", "ARCHIVE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        action, root, archive = args.child
        print(json.dumps(measure(action, Path(root), Path(archive))))
        return
    cols = (
        "points",
        "vectors_mb",
        "archive_mb",
        "export_heap_mb",
        "export_rss_mb",
        "export_s",
        "import_heap_mb",
        "import_rss_mb",
        "import_s",
        "import_optimize_s",
    )
    print(" ".join(f"{c:>14}" for c in cols))
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        row = run(n, args.dim, args.seed)
        rows.append(row)
        print(" ".join(f"{row[c]:>14}" for c in cols), flush=True)
    if len(rows) >= 2:
        for key in ("export_heap_mb", "import_heap_mb"):
            ratio = rows[-1][key] / max(rows[0][key], 0.1)
            print(f"{key} {rows[-1]['points']:,} / {rows[0]['points']:,}: {ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
