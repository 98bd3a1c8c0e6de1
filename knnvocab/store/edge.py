"""The embedded store: Qdrant's engine in process (qdrant-edge), one shard per collection.

Layout: ``<root>/store.json`` (the store's identity), ``<root>/<collection>/collection.json``
(dimension, identity, layout) and ``<root>/<collection>/shard/``: one edge shard holding
every domain of the collection, partitioned by the tenant index on ``domain`` with a
per-tenant HNSW graph (``payload_m``), as Qdrant advises for many tenants. Cost grows with
points, not with domains (bench/tenants.py). Stores written with one shard per domain
(layout 1) are refused until `knnvocab store upgrade` (`knnvocab.store.upgrade`) moves them.

Ownership: a shard is open in one process at a time. The process that first touches a
collection holds its lock file (``shard.lock``, taken before qdrant-edge opens anything)
until it closes the store; another process waits up to ``wait`` seconds, then gets a
`StoreBusyError` naming the holder.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from knnvocab.diskspace import (
    STORE_RESERVE,
    UNDO_RESERVE,
    allocated_bytes,
    free_bytes,
    is_disk_full,
    require,
    sparse_bytes,
)
from knnvocab.errors import (
    DiskFullError,
    KnnvocabError,
    StoreDamagedError,
    StoreError,
)
from knnvocab.store.base import (
    CollectionState,
    Hit,
    PointFilter,
    StoredPoint,
    as_vector,
    new_identity,
    search_limit,
    settle,
)
from knnvocab.store.edge_files import lock_file, read_json, write_json
from knnvocab.store.edge_schema import (
    RESCORE_OVERSAMPLING,
    create_indexes,
    edge_filter,
    hit,
    shard_config,
)
from knnvocab.store.payload import PointPayload
from knnvocab.store.tuning import TUNING

_SCROLL_PAGE = 1024
_STORE_FILE = "store.json"
_COLLECTION_FILE = "collection.json"
_SHARD = "shard"
#: point ids whose class a process keeps (~200 bytes each)
_CLASS_CACHE = 2_000_000
#: what `EdgeStore._failure` blames on damaged files when qdrant-edge fails at it
_READS = ("open", "read", "search")
#: the layout this code writes: 2 = one shard per collection (1 was one per domain)
LAYOUT = 2


class EdgeStore:
    """`VectorStore` on qdrant-edge shards under ``root``, one per collection."""

    backend = "qdrant-edge"

    def __init__(self, root: Path, wait: float = 0.0) -> None:
        self.root = root
        self.wait = wait
        self._shards: dict[str, qe.EdgeShard] = {}
        self._locks: dict[str, int] = {}
        self._dims: dict[str, int] = {}
        self._class_of: dict[Any, int] = {}  # point id -> class id, see _classes
        self._written: set[str] = set()  # collections changed since their last flush

    # identity and collections --------------------------------------------------------

    @property
    def location(self) -> str:
        return str(self.root)

    def root_identity(self) -> str | None:
        """The identity of this store root (``store.json``), None if it has none yet."""
        meta = self.root / _STORE_FILE
        return str(read_json(meta)["identity"]) if meta.is_file() else None

    def _own_identity(self) -> str:
        """The root's identity, created (atomically, first writer wins) if missing."""
        known = self.root_identity()
        if known is not None:
            return known
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.root / _STORE_FILE, {"identity": new_identity()}, exclusive=True)
        return str(self.root_identity())

    def meta_path(self, collection: str) -> Path:
        return self.root / collection / _COLLECTION_FILE

    def ensure_collection(self, collection: str, dim: int) -> None:
        known = self._dims.get(collection)
        if known is not None and known != dim:
            raise StoreError(f"collection {collection} holds {known}-d vectors, not {dim}-d")
        state = self.describe(collection)
        if state is None:
            meta = self.meta_path(collection)
            meta.parent.mkdir(parents=True, exist_ok=True)
            record = {
                "dim": dim,
                "backend": self.backend,
                "identity": self._own_identity(),
                "layout": LAYOUT,
            }
            write_json(meta, record)
        elif state.dim != dim:
            raise StoreError(f"collection {collection} holds {state.dim}-d vectors, not {dim}-d")
        self._dims[collection] = dim

    def describe(self, collection: str) -> CollectionState | None:
        meta = self.meta_path(collection)
        if not meta.is_file():
            return None
        data = read_json(meta)
        identity = data.get("identity")
        return CollectionState(int(data["dim"]), str(identity) if identity else None)

    def layout(self, collection: str) -> int:
        """The layout a collection was written with (1: a shard per domain)."""
        return int(read_json(self.meta_path(collection)).get("layout", 1))

    def adopt(self, collection: str) -> str:
        meta = self.meta_path(collection)
        if not meta.is_file():
            raise StoreError(f"vector collection {collection} does not exist in {self.root}")
        identity = self._own_identity()
        write_json(meta, {**read_json(meta), "identity": identity})
        return identity

    def _dim(self, collection: str) -> int:
        if collection not in self._dims:
            state = self.describe(collection)
            if state is None:
                raise StoreError(f"vector collection {collection} does not exist in {self.root}")
            self._dims[collection] = state.dim
        return self._dims[collection]

    # the shard and its lock ----------------------------------------------------------

    def shard_path(self, collection: str) -> Path:
        return self.root / collection / _SHARD

    def _shard(self, collection: str, create: bool = False) -> qe.EdgeShard | None:
        """The collection's shard, opened (under its lock) on first use; None if it does
        not exist and ``create`` is off."""
        if collection in self._shards:
            return self._shards[collection]
        self._refuse_old_layout(collection)
        path = self.shard_path(collection)
        exists = (path / "edge_config.json").is_file()
        if not exists and not create:
            return None
        self._room(collection, STORE_RESERVE, "open the vector shard")
        self._locks[collection] = lock_file(path.with_suffix(".lock"), self.wait, collection)
        try:
            if exists:
                shard = qe.EdgeShard.load(str(path))
            else:
                shard = qe.EdgeShard.create(str(path), shard_config(self._dim(collection)))
                create_indexes(shard)
                self._written.add(collection)
        except Exception as exc:
            self._unlock(collection)
            raise self._failure(collection, exc, "open") from None
        self._shards[collection] = shard
        return shard

    def _failure(self, collection: str, exc: Exception, doing: str) -> KnnvocabError:
        """qdrant-edge's error (a bare Exception) as knnvocab's: a full disk; a shard whose
        files it cannot open or read (truncated, overwritten, missing); any other failed
        write."""
        path = self.shard_path(collection)
        if is_disk_full(exc):
            return DiskFullError(path, free_bytes(path), 0, f"{doing} the vector shard")
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if doing not in _READS:
            return StoreError(f"vector shard {path}: cannot {doing} it ({reason})")
        return StoreDamagedError(
            collection,
            f"vector shard {path} is damaged: cannot {doing} it ({reason}); its domains "
            "cannot be read until the shard is restored (`knnvocab backup restore` into a "
            "new home); other collections are not affected",
        )

    @contextlib.contextmanager
    def _engine(self, collection: str, doing: str) -> Iterator[None]:
        """Run qdrant-edge calls on ``collection``'s shard, their errors made knnvocab's."""
        try:
            yield
        except KnnvocabError:
            raise
        except Exception as exc:
            raise self._failure(collection, exc, doing) from None

    def _refuse_old_layout(self, collection: str) -> None:
        if self.meta_path(collection).is_file() and self.layout(collection) < LAYOUT:
            raise StoreError(
                f"vector collection {collection} in {self.root} was written by an older "
                "knnvocab (one shard per domain): run `knnvocab store upgrade` once to move "
                "it to the current layout (nothing is lost; resumable)"
            )

    def _room(self, collection: str, reserve: int, doing: str) -> None:
        """Refuse (DiskFullError) unless the disk has room for every sparse byte of the
        shard's memory-mapped files plus ``reserve``: a full disk under them kills the
        process with SIGBUS (`knnvocab.diskspace`)."""
        path = self.shard_path(collection)
        require(path, sparse_bytes(path) + reserve, doing)

    def _writable(self, collection: str) -> qe.EdgeShard:
        shard = self._shard(collection, create=True)
        if shard is None:  # pragma: no cover - create=True always opens or raises
            raise StoreError(f"cannot open vector collection {collection}")
        return shard

    def _unlock(self, collection: str) -> None:
        fd = self._locks.pop(collection, None)
        if fd is not None:
            os.close(fd)

    # VectorStore ---------------------------------------------------------------------

    def open_domain(self, collection: str, domain: str) -> None:
        self._writable(collection)

    def insert(self, collection: str, domain: str, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        shard = self._writable(collection)
        for p in points:
            if p.payload.domain != domain:
                raise StoreError(f"point {p.id} has domain {p.payload.domain!r}, not {domain!r}")
        # a WAL record and the vector, quantized copy and payload pages of each point
        size = len(points) * (16 * len(points[0].vector) + 4096)
        self._room(collection, STORE_RESERVE + size, "write vectors")
        batch = [
            qe.Point(id=p.id, vector=p.vector.tolist(), payload=p.payload.to_dict()) for p in points
        ]
        self._written.add(collection)
        with self._engine(collection, "write to"):
            op = qe.UpdateOperation.upsert_points(batch, update_mode=qe.UpdateMode.InsertOnly)
            shard.update(op)

    def _records(self, collection: str, domain: str, ids: Sequence[Any], fields: Any) -> list[Any]:
        shard = self._shard(collection)
        if shard is None or not ids:
            return []
        with self._engine(collection, "read"):
            records = shard.retrieve(list(ids), with_payload=fields, with_vector=False)
        return [r for r in records if (r.payload or {}).get("domain") == domain]

    def existing(self, collection: str, domain: str, ids: Sequence[str]) -> set[str]:
        return {str(r.id) for r in self._records(collection, domain, ids, ["domain"])}

    def search(
        self,
        collection: str,
        flt: PointFilter,
        vectors: np.ndarray,
        k: int,
        exact: bool = False,
        with_payload: bool = True,
    ) -> list[list[Hit]]:
        shard = self._shard(collection)
        if shard is None or len(vectors) == 0:
            return [[] for _ in range(len(vectors))]
        f = edge_filter(flt)
        params = (
            qe.SearchParams(exact=True, quantization=qe.QuantizationSearchParams(ignore=True))
            if exact
            else qe.SearchParams(
                hnsw_ef=max(TUNING.hnsw_ef, k),
                quantization=qe.QuantizationSearchParams(
                    rescore=True, oversampling=RESCORE_OVERSAMPLING
                ),
            )
        )
        # ids and scores only: payloads selected per hit cost ~3x the search on a small
        # tenant, one look-up of the distinct ids afterwards a fraction of that
        requests = [
            qe.QueryRequest(
                limit=search_limit(k, exact),
                query=qe.Query.Nearest(v),
                filter=f,
                with_payload=False,
                params=params,
            )
            for v in np.asarray(vectors, np.float32).tolist()
        ]
        with self._engine(collection, "search"):
            results = shard.query_batch(qe.QueryBatchRequest(requests))
        # each access to a result's id builds a UUID: take it once
        scored = [[(p.id, p.score) for p in points] for points in results]
        found = list(dict.fromkeys(i for row in scored for i, _ in row))
        if with_payload:
            payloads = {r.id: r.payload for r in self._records(collection, flt.domain, found, True)}
            return [settle([hit(i, score, payloads[i]) for i, score in row], k) for row in scored]
        classes = self._classes(collection, flt.domain, found)
        return [settle([Hit(str(i), score, classes[i]) for i, score in row], k) for row in scored]

    def _classes(self, collection: str, domain: str, ids: list[Any]) -> dict[Any, int]:
        """The class id of each point. A point's class never changes (only its
        ``removed_in`` does), and no other process can write while this one holds the
        shard, so what was looked up once is kept, up to a bound, until this process
        deletes points (an id may come back with another class after a domain is
        deleted and made again)."""
        known = self._class_of
        missing = [i for i in ids if i not in known]
        if missing:
            if len(known) > _CLASS_CACHE:
                known.clear()
            for r in self._records(collection, domain, missing, ["domain", "class_id"]):
                known[r.id] = int((r.payload or {}).get("class_id", -1))
        return {i: known.get(i, -1) for i in ids}

    def count(self, collection: str, flt: PointFilter) -> int:
        shard = self._shard(collection)
        if shard is None:
            return 0
        with self._engine(collection, "read"):
            return int(shard.count(qe.CountRequest(exact=True, filter=edge_filter(flt))))

    def counts_by(self, collection: str, flt: PointFilter, key: str) -> dict[Any, int]:
        shard = self._shard(collection)
        if shard is None:
            return {}
        with self._engine(collection, "read"):
            response = shard.facet(
                qe.FacetRequest(key=key, limit=1_000_000, exact=True, filter=edge_filter(flt))
            )
        return {h.value: int(h.count) for h in response.hits}

    def delete(self, collection: str, flt: PointFilter) -> None:
        self._class_of.clear()
        shard = self._shard(collection)
        if shard is not None:
            self._room(collection, UNDO_RESERVE, "delete vectors")
            self._written.add(collection)
            with self._engine(collection, "write to"):
                shard.update(qe.UpdateOperation.delete_points_by_filter(edge_filter(flt)))

    def set_removed_in(self, collection: str, flt: PointFilter, version: int | None) -> None:
        shard = self._shard(collection)
        if shard is None:
            return
        self._room(collection, UNDO_RESERVE, "update vectors")
        if version is None:
            op = qe.UpdateOperation.delete_payload_by_filter(edge_filter(flt), ["removed_in"])
        else:
            op = qe.UpdateOperation.set_payload_by_filter(edge_filter(flt), {"removed_in": version})
        self._written.add(collection)
        with self._engine(collection, "write to"):
            shard.update(op)

    def scroll(
        self, collection: str, flt: PointFilter, with_vectors: bool = False
    ) -> Iterator[StoredPoint]:
        shard = self._shard(collection)
        if shard is None:
            return
        with self._engine(collection, "read"):
            yield from scroll_shard(shard, edge_filter(flt), with_vectors)

    def optimize(self, collection: str, domain: str) -> None:
        shard = self._shard(collection)
        if shard is not None:  # the optimizer writes merged copies of the segments first
            path = self.shard_path(collection)
            self._room(collection, STORE_RESERVE + allocated_bytes(path), "index vectors")
            self._written.add(collection)
            with self._engine(collection, "index"):
                shard.optimize()

    def indexed_vectors(self, collection: str, domain: str) -> int:
        """How many of the collection's vectors are in an HNSW graph (0: searches scan)."""
        shard = self._shard(collection)
        if shard is None:
            return 0
        with self._engine(collection, "read"):
            return int(shard.info().indexed_vectors_count)

    def domains(self, collection: str) -> list[str]:
        """Domains that have points in ``collection``."""
        shard = self._shard(collection)
        if shard is None:
            return []
        with self._engine(collection, "read"):
            response = shard.facet(qe.FacetRequest(key="domain", limit=1_000_000, exact=True))
        return sorted(str(h.value) for h in response.hits if h.count > 0)

    def drop_domain(self, collection: str, domain: str) -> None:
        """Delete every point of the domain; the shard's optimizer reclaims the space."""
        self.delete(collection, PointFilter(domain=domain))

    def flush(self) -> None:
        for collection, shard in self._shards.items():
            self._flush(collection, shard)

    def _flush(self, collection: str, shard: qe.EdgeShard) -> None:
        """Flush a shard this process changed (a reader has nothing to flush: on a full
        disk it must still be able to close)."""
        if collection not in self._written:
            return
        try:
            shard.flush()
            self._written.discard(collection)
        except Exception as exc:  # qdrant-edge raises a bare Exception
            raise self._failure(collection, exc, "flush") from None

    def close(self) -> None:
        """Flush and close every shard and release its lock; the first failure is raised
        once everything is released (what was not flushed is in the shard's WAL)."""
        failure: KnnvocabError | None = None
        for collection, shard in self._shards.items():
            try:
                self._flush(collection, shard)
            except KnnvocabError as exc:
                failure = failure or exc
            try:
                shard.close()
            except Exception as exc:  # qdrant-edge raises a bare Exception
                failure = failure or self._failure(collection, exc, "close")
        self._shards.clear()
        self._class_of.clear()
        for collection in list(self._locks):
            self._unlock(collection)
        if failure is not None:
            raise failure


def scroll_shard(
    shard: qe.EdgeShard, f: qe.Filter | None, with_vectors: bool
) -> Iterator[StoredPoint]:
    """Every point of ``shard`` matching ``f``, a page at a time."""
    offset: Any = None
    while True:
        records, offset = shard.scroll(
            qe.ScrollRequest(
                offset=offset,
                limit=_SCROLL_PAGE,
                filter=f,
                with_payload=True,
                with_vector=with_vectors,
            )
        )
        for r in records:
            vec = as_vector(r.vector) if with_vectors else np.zeros(0, np.float32)
            yield StoredPoint(str(r.id), vec, PointPayload.from_dict(r.payload or {}))
        if offset is None:
            return
