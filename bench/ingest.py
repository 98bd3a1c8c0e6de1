"""Ingest throughput against the encoder's bare forward pass, on the same images, same run.

    python bench/ingest.py [--copies 10] [--model ViT-B-16] [--repeat 2] [--device cuda]
                           [--json out.json]

Builds an index-mask dataset from the real labelled photos of labelme-examples (replicated
``--copies`` times), then measures
  * bare forward: the encoder's dense forward on the already-decoded images (same batches);
  * full ingest: decode, hash, pool, insert into qdrant-edge, catalog, index, publish —
    into a fresh SQLite + qdrant-edge home;
and prints instances/s of both and their ratio. Target: ratio >= 0.8 (the pipeline around
the model costs at most a fifth). The encoder is ViT-B-16 with untrained weights by default
(the same compute as trained weights; no hub is reachable here).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import add_device_option, median_seconds, replicated_voc, synchronize
from knnvocab.config import Settings
from knnvocab.datasets import open_dataset
from knnvocab.embed.spec import EncoderSpec
from knnvocab.errors import UntrainedEncoderWarning
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.workspace import Workspace


def bare_forward(ws: Workspace, spec: EncoderSpec, data: Path, batch: int) -> tuple[float, int]:
    """Seconds for the dense forward of every image (decoded beforehand), and instances."""
    encoder = ws.encoder(spec)
    reader = open_dataset("index-masks", data)
    samples = [reader.load(ref) for ref in reader.samples()]
    instances = sum(int((s.instances.areas >= 16).sum()) for s in samples)
    images = [s.image for s in samples]

    def run() -> None:
        for start in range(0, len(images), batch):
            encoder.dense_features(images[start : start + batch], batch_size=batch)
        synchronize(encoder.device)  # ingest waits for its features; so must this

    run()  # warm-up
    return median_seconds(run, 1), instances


def full_ingest(ws_home: Path, ws: Workspace, spec: EncoderSpec, data: Path, batch: int) -> float:
    settings = Settings(
        home=ws_home,
        database_url=f"sqlite:///{ws_home / 'catalog.sqlite3'}",
        device=ws.settings.device,
    )
    with Workspace(settings) as fresh:
        fresh._encoders = ws._encoders  # the same loaded model: model loading is not timed
        start = time.perf_counter()
        summary = ingest(
            fresh,
            "bench",
            data,
            IngestOptions("index-masks", batch_size=batch),
            spec,
            actor="bench",
        )
        elapsed = time.perf_counter() - start
    if summary.total_added == 0:
        raise SystemExit("ingest added nothing: the benchmark dataset is wrong")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    add_device_option(parser)
    args = parser.parse_args()
    spec = EncoderSpec(args.model, checkpoint=args.checkpoint, untrained=args.checkpoint is None)
    warnings.simplefilter("ignore", UntrainedEncoderWarning)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = replicated_voc(root / "data", args.copies)
        settings = Settings(
            home=root / "h0", database_url=f"sqlite:///{root / 'h0.sqlite3'}", device=args.device
        )
        with Workspace(settings) as ws:
            forward, ingested = [], []
            for i in range(args.repeat):
                seconds, instances = bare_forward(ws, spec, data, args.batch_size)
                forward.append(seconds)
                ingested.append(full_ingest(root / f"h{i + 1}", ws, spec, data, args.batch_size))
    images = len(list((data / "images").glob("*.jpg"))) if data.exists() else 8 * args.copies
    report(args, min(forward), min(ingested), instances, images)


def report(
    args: argparse.Namespace, forward: float, ingested: float, instances: int, images: int
) -> None:
    ratio = forward / ingested
    result = {
        "model": args.model,
        "device": args.device,
        "images": images,
        "instances": instances,
        "bare_forward_instances_per_s": round(instances / forward, 2),
        "ingest_instances_per_s": round(instances / ingested, 2),
        "ratio": round(ratio, 3),
        "target": 0.8,
        "met": ratio >= 0.8,
    }
    print(f"{images} images, {instances} instances, encoder {args.model} on {args.device}")
    print(f"bare forward : {forward:7.2f} s  {instances / forward:7.1f} instances/s")
    print(f"full ingest  : {ingested:7.2f} s  {instances / ingested:7.1f} instances/s")
    verdict = "met" if ratio >= 0.8 else "NOT met"
    print(f"ratio ingest/forward throughput = {ratio:.3f}  (target >= 0.8: {verdict})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
