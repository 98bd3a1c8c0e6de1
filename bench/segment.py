"""Per-image segmentation time with retrieval against zero-shot alone, same images, same run.

    python bench/segment.py [--copies 5] [--extra-points 100000] [--repeat 2] [--device cuda]
                            [--json out.json]

Ingests the real labelled photos of labelme-examples (replicated ``--copies`` times) into a
fresh domain (SQLite + qdrant-edge), pads the domain with ``--extra-points`` stored
instances (unit vectors near the real embeddings, so the kNN search runs against a
realistically large database; HNSW built by the ingest's optimize), then segments the
real photos twice per pass — full kNN-CLIP and zero-shot only — and prints the median
per-image times and their ratio. Target: ratio <= 1.2.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import VIDEO, VOC, add_device_option, replicated_voc
from knnvocab.config import Settings
from knnvocab.embed.spec import EncoderSpec
from knnvocab.engine.params import SegmentParams
from knnvocab.engine.segmenter import Segmenter
from knnvocab.errors import UntrainedEncoderWarning
from knnvocab.imageio import load_rgb
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.store.base import PointFilter, StoredPoint, point_id
from knnvocab.workspace import Workspace


def pad_domain(ws: Workspace, collection: str, domain: str, n: int) -> None:
    """Insert ``n`` extra instances near the stored ones (same classes, version 1)."""
    real = list(ws.store.scroll(collection, PointFilter(domain), with_vectors=True))
    rng = np.random.default_rng(0)
    for start in range(0, n, 4096):
        count = min(4096, n - start)
        picks = rng.integers(0, len(real), count)
        base = np.stack([real[i].vector for i in picks])
        noisy = base + rng.normal(0, 0.35 / np.sqrt(base.shape[1]), base.shape).astype(np.float32)
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        points = [
            StoredPoint(
                point_id(domain, "padding", f"pad{start + j}", "x", collection),
                vec,
                replace(real[i].payload, dataset="padding", image=f"pad{start + j}"),
            )
            for j, (i, vec) in enumerate(zip(picks, noisy, strict=True))
        ]
        ws.store.insert(collection, domain, points)
    ws.store.optimize(collection, domain)


def time_per_image(
    segmenter: Segmenter, images: list[np.ndarray], paths: list[Path]
) -> list[float]:
    times = []
    for image, path in zip(images, paths, strict=True):
        start = time.perf_counter()
        segmenter.segment(image, path)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=5)
    parser.add_argument("--extra-points", type=int, default=100_000)
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    add_device_option(parser)
    args = parser.parse_args()
    warnings.simplefilter("ignore", UntrainedEncoderWarning)
    spec = EncoderSpec(args.model, untrained=True)
    paths = sorted((VOC / "JPEGImages").glob("*.jpg")) + sorted(
        (VIDEO / "JPEGImages").glob("*.jpg")
    )
    images = [load_rgb(p) for p in paths]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(
            home=root / "home", database_url=f"sqlite:///{root / 'c.sqlite3'}", device=args.device
        )
        with Workspace(settings) as ws:
            data = replicated_voc(root / "data", args.copies)
            ingest(ws, "bench", data, IngestOptions("index-masks"), spec, actor="bench")
            collection = ws.encoder(spec).info.collection
            pad_domain(ws, collection, "bench", args.extra_points)
            stored = ws.store.count(collection, PointFilter("bench"))
            full = Segmenter(ws, "bench", None, SegmentParams())
            zero = Segmenter(ws, "bench", None, SegmentParams(zero_shot_only=True))
            full.segment(images[0], paths[0])  # warm-up (and the text embeddings)
            t_full: list[float] = []
            t_zero: list[float] = []
            for _ in range(args.repeat):
                t_zero += time_per_image(zero, images, paths)
                t_full += time_per_image(full, images, paths)
    report(args, stored, len(images), statistics.median(t_full), statistics.median(t_zero))


def report(args: argparse.Namespace, stored: int, images: int, full: float, zero: float) -> None:
    ratio = full / zero
    verdict = "met" if ratio <= 1.2 else "NOT met"
    print(
        f"{images} real photos, domain of {stored} stored instances, "
        f"encoder {args.model} on {args.device}"
    )
    print(f"zero-shot only     : {zero * 1000:8.1f} ms per image (median)")
    print(f"kNN-CLIP (retrieval): {full * 1000:8.1f} ms per image (median)")
    print(f"ratio retrieval/zero-shot = {ratio:.3f}  (target <= 1.2: {verdict})")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "device": args.device,
                    "stored": stored,
                    "images": images,
                    "zero_shot_ms": zero * 1000,
                    "retrieval_ms": full * 1000,
                    "ratio": ratio,
                    "met": ratio <= 1.2,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
