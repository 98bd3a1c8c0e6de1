"""`knnvocab store upgrade`: move an embedded store written with one qdrant-edge shard per
domain (layout 1) to one shard per collection (layout 2), in place.

Per collection: every point of every old domain shard is copied, with its vector and
payload unchanged, into the collection's new shard (insert-only, so a run that was killed
and is started again copies nothing twice), each domain's count is verified, and only
then does ``collection.json`` say layout 2 — the commit point. The old shards are
deleted after it (a leftover is deleted by the next run). Nothing is refused meanwhile
but the collection itself, which stays locked while it moves.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from knnvocab.errors import StoreError
from knnvocab.progress import NoProgress, Progress
from knnvocab.store.edge import LAYOUT, EdgeStore, scroll_shard
from knnvocab.store.edge_files import lock_file, read_json, write_json
from knnvocab.store.edge_schema import create_indexes, shard_config

_BATCH = 1024


@dataclass(frozen=True)
class UpgradeReport:
    """One collection: its layout before, and the points moved per domain."""

    collection: str
    layout_before: int
    moved: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def old_shards(store: EdgeStore, collection: str) -> list[Path]:
    """The per-domain shard folders (layout 1) of ``collection``."""
    folder = store.root / collection
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.name != "shard" and (p / "edge_config.json").is_file()
    )


def collections(store: EdgeStore) -> list[str]:
    if not store.root.is_dir():
        return []
    return sorted(p.name for p in store.root.iterdir() if (p / "collection.json").is_file())


def upgrade_store(store: EdgeStore, progress: Progress | None = None) -> list[UpgradeReport]:
    """Upgrade every collection of ``store`` that needs it (the others are reported)."""
    return [upgrade_collection(store, c, progress or NoProgress()) for c in collections(store)]


def upgrade_collection(store: EdgeStore, collection: str, progress: Progress) -> UpgradeReport:
    before = store.layout(collection)
    shards = old_shards(store, collection)
    if before >= LAYOUT:
        _remove(shards)  # leftovers of a run killed after its commit point
        return UpgradeReport(collection, before)
    lock = lock_file(store.shard_path(collection).with_suffix(".lock"), store.wait, collection)
    try:
        target = _target(store, collection)
        try:
            moved = {p.name: _move(p, target, progress) for p in shards}
            target.flush()
        finally:
            target.close()
        meta = store.meta_path(collection)
        write_json(meta, {**read_json(meta), "layout": LAYOUT})  # the commit point
    finally:
        os.close(lock)
    _remove(shards)
    return UpgradeReport(collection, before, moved)


def _target(store: EdgeStore, collection: str) -> qe.EdgeShard:
    path = store.shard_path(collection)
    if (path / "edge_config.json").is_file():  # a run that was killed: continue it
        return qe.EdgeShard.load(str(path))
    state = store.describe(collection)
    if state is None:
        raise StoreError(f"vector collection {collection} does not exist in {store.root}")
    shard = qe.EdgeShard.create(str(path), shard_config(state.dim))
    create_indexes(shard)
    return shard


def _move(old: Path, target: qe.EdgeShard, progress: Progress) -> int:
    """Copy every point of the old shard ``old`` (one domain) into ``target``; verify."""
    domain = old.name
    lock = lock_file(old.parent / f"{domain}.lock", 0.0, f"{old.parent.name}/{domain}")
    try:
        source = qe.EdgeShard.load(str(old))
        try:
            total = int(source.count(qe.CountRequest(exact=True)))
            progress.start(total, 0)
            batch: list[qe.Point] = []
            for p in scroll_shard(source, None, with_vectors=True):
                batch.append(
                    qe.Point(id=p.id, vector=p.vector.tolist(), payload=p.payload.to_dict())
                )
                if len(batch) >= _BATCH:
                    _insert(target, batch, progress)
                    batch = []
            _insert(target, batch, progress)
        finally:
            source.close()
    finally:
        os.close(lock)
    progress.finish()
    moved = _count(target, domain)
    if moved != total:
        raise StoreError(
            f"{old}: {total} points in the old shard, but {moved} of domain {domain!r} in the "
            "new one; nothing was deleted — run `knnvocab store upgrade` again"
        )
    return total


def _insert(target: qe.EdgeShard, batch: list[qe.Point], progress: Progress) -> None:
    if batch:
        mode = qe.UpdateMode.InsertOnly
        target.update(qe.UpdateOperation.upsert_points(batch, update_mode=mode))
        progress.advance(len(batch), len(batch))


def _count(shard: qe.EdgeShard, domain: str) -> int:
    match = qe.FieldCondition(key="domain", match=qe.MatchValue(domain))
    return int(shard.count(qe.CountRequest(exact=True, filter=qe.Filter(must=[match]))))


def _remove(shards: list[Path]) -> None:
    for path in shards:
        shutil.rmtree(path, ignore_errors=True)
        (path.parent / f"{path.name}.lock").unlink(missing_ok=True)
