"""The web console's pages on a large synthetic domain, served by a real `knnvocab serve`.

    python bench/console.py [--versions 1000] [--instances 100000] [--classes 50]
                            [--repeat 5] [--json console.json]

Builds a temporary embedded home (SQLite + qdrant-edge) with one domain, ``big``, written
through the library: ``--versions`` published versions (versioned changes, what an ingest
does without an encoder), each adding ``instances / versions`` points (random 64-d unit
vectors) spread over ``--classes`` classes, one class retired and restored on the way
(through `knnvocab.lifecycle`). Then it starts `knnvocab serve` on it, signs in to the
console with a write token and times each page (median of ``--repeat`` requests, after a
warm-up), in milliseconds, served (client side, loopback). Baselines measured in the same
run, on the same server: ``/healthz`` (the cheapest answer) and the JSON page of versions
(``/v1/domains/big/versions?limit=25``).

Target (issue 14): every page under 300 ms. Never run as a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.serve import make_tiny_model
from knnvocab.catalog.classes import ensure_classes
from knnvocab.catalog.domains import bind_encoder, create_domain, ensure_encoder
from knnvocab.catalog.versions import ClassChange
from knnvocab.changes import Opening, versioned_change
from knnvocab.config import Settings
from knnvocab.embed.prompts import DEFAULT_PROMPTS
from knnvocab.embed.spec import EncoderInfo, EncoderSpec
from knnvocab.lifecycle import restore, retire
from knnvocab.store.base import StoredPoint, point_id
from knnvocab.store.payload import PointPayload
from knnvocab.tokens import create_token
from knnvocab.workspace import Workspace
from tests.service.server import Server, knnvocab_env

DOMAIN, DIM = "big", 64


def _points(
    name: str,
    fp: str,
    number: int,
    run: str,
    n: int,
    classes: list[tuple[int, str]],
    rng: np.random.Generator,
) -> list[StoredPoint]:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    out = []
    for i, v in enumerate(vectors):
        cid, label = classes[(number * 7 + i) % len(classes)]
        image, instance = f"v{number}-img{i // 4}", f"obj{i % 4}"
        payload = PointPayload(name, cid, label, number, "synthetic", run, image, instance, 900)
        out.append(StoredPoint(point_id(name, "synthetic", image, instance, fp), v, payload))
    return out


def build(ws: Workspace, spec: EncoderSpec, args: argparse.Namespace) -> None:
    """The synthetic domain: ``args.versions`` versions through the versioned change."""
    info = EncoderInfo(spec, "bench-console", "0" * 64, "0" * 64, DIM, 64, 16)
    ws.store.ensure_collection(info.collection, DIM)
    with ws.catalog.session() as s:
        encoder = ensure_encoder(s, info)
        bind_encoder(create_domain(s, DOMAIN, "bench"), encoder)
    names = [f"class{i:03d}" for i in range(args.classes)]
    per, rng = args.instances // args.versions, np.random.default_rng(0)
    for number in range(1, args.versions + 1):
        if number == args.versions // 2:
            retire(ws, DOMAIN, names[1], "bench", actor="bench")
            restore(ws, DOMAIN, names[1], "bench", actor="bench")
            continue
        opening = Opening(encoder=encoder, message=f"batch {number}")
        with versioned_change(ws, DOMAIN, "ingest", "bench", opening) as change:
            with ws.catalog.session() as s:
                made = ensure_classes(s, change.load(s)[0], names, change.number, DEFAULT_PROMPTS)
                classes = [(c.class_id, c.name) for c in made.values()]
                pks = {c.class_id: c.id for c in made.values()}
            points = _points(
                DOMAIN, info.fingerprint, change.number, change.run_id, per, classes, rng
            )
            ws.store.insert(change.collection, DOMAIN, points)
            counts: dict[int, int] = {}
            for p in points:
                counts[p.payload.class_id] = counts.get(p.payload.class_id, 0) + 1
            changes = {pks[c]: ClassChange(added=n) for c, n in counts.items()}
            change.publish(changes, {"instances": len(points)}, {"bench": True})


def median_ms(client: httpx.Client, path: str, repeat: int) -> tuple[float, int]:
    client.get(path)  # warm-up
    times, status = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        status = client.get(path).status_code
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3, status


def pages(versions: int) -> dict[str, str]:
    d = f"/ui/domains/{DOMAIN}"
    return {
        "overview": d,
        "versions (newest page)": f"{d}/versions",
        "versions (oldest page)": f"{d}/versions?offset={versions - 25}&limit=25",
        "diff (first to head)": f"{d}/diff?from=1&to={versions}",
        "audit (newest page)": f"{d}/audit",
        "audit (filtered, deep page)": f"{d}/audit?action=ingest&offset={versions - 50}",
        "class (first page)": f"{d}/classes/class001",
        "class (page 20)": f"{d}/classes/class001?offset=480&limit=24",
        "try it (form)": f"{d}/try",
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="knnvocab-bench-console-") as tmp:
        root = Path(tmp)
        spec = make_tiny_model(root)
        home = root / "home"
        url = f"sqlite:///{home / 'catalog.sqlite3'}"
        t = time.perf_counter()
        with Workspace(Settings(home=home, database_url=url, user="bench")) as ws:
            build(ws, spec, args)
            _, secret = create_token(ws, DOMAIN, "write", actor="bench", name="bench-write")
        built = time.perf_counter() - t
        env = knnvocab_env(home, url)
        with (
            Server(env, root / "serve.log", ready_timeout=300) as server,
            httpx.Client(base_url=server.url, timeout=120) as client,
        ):
            client.post("/ui/sign-in", data={"token": secret})
            timed = {k: median_ms(client, p, args.repeat) for k, p in pages(args.versions).items()}
            health = median_ms(client, "/healthz", args.repeat)[0]
            auth = {"Authorization": f"Bearer {secret}"}
            client.headers.update(auth)
            json_versions = median_ms(
                client, f"/v1/domains/{DOMAIN}/versions?limit=25", args.repeat
            )[0]
    return {
        "versions": args.versions,
        "instances": args.instances,
        "classes": args.classes,
        "build_s": round(built, 1),
        "healthz_ms": round(health, 2),
        "json_versions_ms": round(json_versions, 1),
        "pages": {k: {"ms": round(ms, 1), "status": st} for k, (ms, st) in timed.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(args)
    print(
        f"{args.versions} versions, {args.instances} instances, {args.classes} classes "
        f"(built in {result['build_s']} s)"
    )
    print(
        f"baselines: /healthz {result['healthz_ms']} ms, JSON versions page "
        f"{result['json_versions_ms']} ms"
    )
    print(f"{'page':30} {'ms':>8} {'÷ healthz':>10} {'÷ JSON':>8}  status")
    for name, page in result["pages"].items():
        ms = page["ms"]
        print(
            f"{name:30} {ms:8.1f} {ms / result['healthz_ms']:10.1f} "
            f"{ms / result['json_versions_ms']:8.2f}  {page['status']}"
        )
    worst = max(p["ms"] for p in result["pages"].values())
    print(
        f"target: every page < 300 ms: {'met' if worst < 300 else 'NOT met'} "
        f"(slowest {worst:.1f} ms)"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
