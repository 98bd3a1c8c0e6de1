"""Throughput of `knnvocab serve` against the in-process segmenter, same photos, same run.

    python bench/serve.py [--requests 24] [--clients 1,4,16] [--overload-seconds 10]
                          [--segment-threads 1] [--json]

Builds a temporary embedded home (SQLite + qdrant-edge) with the domain ``street`` (the
three real labelme VOC photos, a tiny real open_clip model), then:

1. closed loop: 1, 4, 16 clients (threads, one httpx.Client each) POST the photos, cycled,
   to /v1/domains/street/segment, ``--requests`` per level, on a service whose queue holds
   every client; throughput, p50 / p99 latency, statuses;
2. baseline, measured before and after each level (the machine's load drifts) and averaged:
   the in-process ``Segmenter.segment(load_rgb(photo))``, sequential, ``--requests`` images,
   on a copy of the home (the service owns the store); ratio = served ÷ in-process
   (target >= 0.9 at 4 clients);
3. overload: a service with a small queue (2, request timeout 5 s) gets requests open-loop
   at twice the 4-client throughput for ``--overload-seconds``; every answer must be 200 or
   503 with Retry-After: no 500, no connection error, no hang.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from knnvocab.config import Settings
from knnvocab.embed.spec import EncoderSpec
from knnvocab.engine.params import SegmentParams
from knnvocab.engine.segmenter import Segmenter
from knnvocab.imageio import load_rgb
from knnvocab.workspace import Workspace
from tests.conftest import LABELME_VOC, TINY_CONFIG
from tests.service.conftest import build_home
from tests.service.server import Server, knnvocab_env

PHOTOS = sorted((LABELME_VOC / "JPEGImages").glob("*.jpg"))
ROUTE = "/v1/domains/street/segment"
Result = tuple[str, float, str | None]  # status (or the exception's name), seconds, Retry-After


def make_tiny_model(folder: Path) -> EncoderSpec:
    """The tests' tiny open_clip ViT (tests/conftest.py's ``tiny_model``), saved in ``folder``."""
    import open_clip
    import torch

    config = folder / "knnvocab-tiny.json"
    config.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config)
    torch.manual_seed(1234)
    checkpoint = folder / "knnvocab-tiny.pt"
    torch.save(open_clip.create_model("knnvocab-tiny").state_dict(), checkpoint)
    return EncoderSpec(model=str(config), checkpoint=str(checkpoint))


def in_process(segmenter: Segmenter, n: int) -> float:
    """Images per second of the in-process segmenter, decode included, sequential."""
    start = time.perf_counter()
    for i in range(n):
        segmenter.segment(load_rgb(PHOTOS[i % len(PHOTOS)]))
    return n / (time.perf_counter() - start)


def files(i: int, photos: list[bytes]) -> dict[str, tuple[str, bytes, str]]:
    return {"image": (PHOTOS[i % len(PHOTOS)].name, photos[i % len(photos)], "image/jpeg")}


def send(client: httpx.Client, i: int, photos: list[bytes]) -> Result:
    start = time.perf_counter()
    try:
        r = client.post(ROUTE, files=files(i, photos))
        return str(r.status_code), time.perf_counter() - start, r.headers.get("retry-after")
    except httpx.HTTPError as exc:
        return type(exc).__name__, time.perf_counter() - start, None


def summary(results: list[Result], wall: float) -> dict[str, Any]:
    statuses = Counter(status for status, _, _ in results)
    ok = [s * 1000 for status, s, _ in results if status == "200"]
    return {
        "requests": len(results),
        "throughput": len(ok) / wall,
        "p50_ms": float(np.percentile(ok, 50)) if ok else None,
        "p99_ms": float(np.percentile(ok, 99)) if ok else None,
        "max_ms": max(s for _, s, _ in results) * 1000,
        "ok": statuses["200"],
        "busy": statuses["503"],
        "other": {k: v for k, v in statuses.items() if k not in ("200", "503")},
        "busy_without_retry_after": sum(1 for st, _, ra in results if st == "503" and not ra),
    }


def closed_loop(url: str, headers: dict[str, str], clients: int, n: int) -> dict[str, Any]:
    """``clients`` threads, each with its own connection, send ``n`` requests in all."""
    photos = [p.read_bytes() for p in PHOTOS]
    lock, results, issued = threading.Lock(), list[Result](), [0]

    def worker() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=300) as client:
            while True:
                with lock:
                    i, issued[0] = issued[0], issued[0] + 1
                if i >= n:
                    return
                result = send(client, i, photos)
                with lock:
                    results.append(result)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"clients": clients, **summary(results, time.perf_counter() - start)}


async def open_loop(url: str, headers: dict[str, str], rate: float, n: int) -> dict[str, Any]:
    """``n`` requests sent at ``rate`` per second whatever the answers (30 s client timeout)."""
    photos = [p.read_bytes() for p in PHOTOS]
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=30, limits=limits
    ) as client:
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        async def one(i: int) -> Result:
            await asyncio.sleep(max(0.0, t0 + i / rate - loop.time()))
            start = time.perf_counter()
            try:
                r = await client.post(ROUTE, files=files(i, photos))
                return str(r.status_code), time.perf_counter() - start, r.headers.get("retry-after")
            except httpx.HTTPError as exc:
                return type(exc).__name__, time.perf_counter() - start, None

        start = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(n)))
        return {"rate": rate, **summary(list(results), time.perf_counter() - start)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=24, help="requests per level")
    parser.add_argument("--clients", default="1,4,16", help="concurrency levels")
    parser.add_argument("--overload-seconds", type=float, default=10.0)
    parser.add_argument("--overload-max", type=int, default=600, help="cap on overload requests")
    parser.add_argument("--segment-threads", type=int, default=1, help="KNNVOCAB_SEGMENT_THREADS")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    out: dict[str, Any] = {"photos": len(PHOTOS), "segment_threads": args.segment_threads}
    out["load_before"] = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="knnvocab-bench-serve-"))
    try:
        home = root / "home"
        database_url = f"sqlite:///{home / 'catalog.sqlite3'}"
        settings = Settings(home=home, database_url=database_url, user="bench")
        (root / "model").mkdir()
        tokens = build_home(settings, make_tiny_model(root / "model"), LABELME_VOC)
        headers = {"Authorization": f"Bearer {tokens['street:query']}"}
        # the service owns the store: the baseline runs on a copy, around each level
        copy = root / "copy"
        shutil.copytree(home, copy, ignore=shutil.ignore_patterns("*.lock", "service.json"))
        copy_url = f"sqlite:///{copy / 'catalog.sqlite3'}"
        ws = Workspace(Settings(home=copy, database_url=copy_url, user="bench"))
        segmenter = Segmenter(ws, "street", None, SegmentParams())
        in_process(segmenter, 2)  # warm-up
        threads = str(args.segment_threads)
        env = knnvocab_env(
            home,
            database_url,
            KNNVOCAB_SEGMENT_THREADS=threads,
            KNNVOCAB_SEGMENT_QUEUE=str(2 * max(levels)),
            KNNVOCAB_REQUEST_TIMEOUT="300",
        )
        out["levels"] = []
        with ws, Server(env, root / "serve.log") as server:
            closed_loop(server.url, headers, 1, 2 * len(PHOTOS))  # warm-up
            before = in_process(segmenter, args.requests)
            for clients in levels:
                level = closed_loop(server.url, headers, clients, args.requests)
                after = in_process(segmenter, args.requests)
                baseline = (before + after) / 2  # the level is bracketed by two baselines
                level.update(in_process=baseline, ratio=level["throughput"] / baseline)
                out["levels"].append(level)
                before = after
        at4 = [lv for lv in out["levels"] if lv["clients"] == 4] or out["levels"]
        out["ratio_at_4"] = at4[0]["ratio"]
        out["met"] = at4[0]["ratio"] >= 0.9
        rate = 2 * at4[0]["throughput"]
        n = max(1, min(args.overload_max, round(rate * args.overload_seconds)))
        env = knnvocab_env(
            home,
            database_url,
            KNNVOCAB_SEGMENT_THREADS=threads,
            KNNVOCAB_SEGMENT_QUEUE="2",
            KNNVOCAB_REQUEST_TIMEOUT="5",
        )
        log = root / "overload.log"
        with Server(env, log) as server:
            closed_loop(server.url, headers, 1, len(PHOTOS))  # warm-up
            over = asyncio.run(open_loop(server.url, headers, rate, n))
            over["alive_after"] = server.alive()
            try:
                over["ready_after"] = httpx.get(f"{server.url}/readyz", timeout=10).status_code
            except httpx.HTTPError as exc:
                over["ready_after"] = type(exc).__name__
        over["clean"] = (
            over["ok"] + over["busy"] == over["requests"]
            and over["busy_without_retry_after"] == 0
            and over["alive_after"]
            and over["ready_after"] == 200
        )
        if not over["clean"]:
            over["log_tail"] = log.read_text()[-4000:]
        out["overload"] = over
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out["load_after"] = os.getloadavg()[0]
    print(json.dumps(out, indent=2) if args.json else report(out))


def report(out: dict[str, Any]) -> str:
    lines = [
        f"{out['photos']} real photos, cycled; service: {out['segment_threads']} segment "
        "thread(s); in-process images/s: mean of the runs just before and after each level; "
        f"load average {out['load_before']:.2f} at start, {out['load_after']:.2f} at end",
        "| clients | requests | req/s | p50 ms | p99 ms | 200 | 503 | other | in-proc/s | ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for lv in out["levels"]:
        lines.append(
            f"| {lv['clients']} | {lv['requests']} | {lv['throughput']:.2f} | "
            f"{lv['p50_ms'] or 0:.0f} | {lv['p99_ms'] or 0:.0f} | {lv['ok']} | {lv['busy']} | "
            f"{sum(lv['other'].values())} | {lv['in_process']:.2f} | {lv['ratio']:.2f} |"
        )
    verdict = "met" if out["met"] else "missed"
    lines.append(f"target served ÷ in-process >= 0.9 at 4 clients: {verdict}")
    o = out["overload"]
    lines.append(
        f"overload: {o['requests']} requests open-loop at {o['rate']:.2f} req/s (2 × the "
        f"4-client rate), queue 2, timeout 5 s: 200 = {o['ok']}, 503 = {o['busy']} "
        f"(without Retry-After: {o['busy_without_retry_after']}), other = {o['other']}, "
        f"slowest {o['max_ms']:.0f} ms, served {o['throughput']:.2f} req/s, "
        f"ready after: {o['ready_after']}: {'clean' if o['clean'] else 'NOT clean'}"
    )
    if not o["clean"]:
        lines.append(f"server log tail:\n{o['log_tail']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
