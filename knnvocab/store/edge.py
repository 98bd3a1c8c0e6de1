"""The embedded store: Qdrant's engine in process (qdrant-edge), one shard per domain.

Layout: ``<root>/<collection>/collection.json`` and ``<root>/<collection>/<domain>/`` (an
edge shard). A shard is open in one process at a time; a second process gets a
`StoreBusyError`. A shard per domain keeps tenants physically apart and lets ingests into
different domains run in parallel processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from knnvocab.errors import StoreBusyError, StoreError
from knnvocab.store.base import (
    CollectionState,
    Hit,
    PointFilter,
    StoredPoint,
    as_vector,
    new_identity,
)
from knnvocab.store.edge_schema import (
    RESCORE_OVERSAMPLING,
    create_indexes,
    edge_filter,
    shard_config,
)
from knnvocab.store.payload import PointPayload

_DOMAIN_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_SCROLL_PAGE = 1024
_STORE_FILE = "store.json"
_COLLECTION_FILE = "collection.json"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path}: unreadable store metadata ({exc})") from None
    if not isinstance(data, dict):
        raise StoreError(f"{path}: unreadable store metadata (not a JSON object)")
    return data


def _write_json(path: Path, data: dict[str, Any], exclusive: bool = False) -> None:
    """Write ``path`` atomically (temp file, fsync, rename); ``exclusive``: keep an
    existing file (another process created it first)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    if exclusive:
        with contextlib.suppress(FileExistsError):  # another process was first: keep its
            os.link(tmp, path)
        tmp.unlink()
    else:
        tmp.replace(path)


class EdgeStore:
    """`VectorStore` on qdrant-edge shards under ``root``."""

    backend = "qdrant-edge"

    def __init__(self, root: Path, hnsw_ef: int = 128) -> None:
        self.root = root
        self.hnsw_ef = hnsw_ef
        self._shards: dict[tuple[str, str], qe.EdgeShard] = {}
        self._locks: dict[tuple[str, str], int] = {}
        self._dims: dict[str, int] = {}

    # collections and shards -----------------------------------------------------------

    @property
    def location(self) -> str:
        return str(self.root)

    def root_identity(self) -> str | None:
        """The identity of this store root (``store.json``), None if it has none yet."""
        meta = self.root / _STORE_FILE
        return str(_read_json(meta)["identity"]) if meta.is_file() else None

    def _own_identity(self) -> str:
        """The root's identity, created (atomically, first writer wins) if missing."""
        known = self.root_identity()
        if known is not None:
            return known
        self.root.mkdir(parents=True, exist_ok=True)
        _write_json(self.root / _STORE_FILE, {"identity": new_identity()}, exclusive=True)
        return str(self.root_identity())

    def ensure_collection(self, collection: str, dim: int) -> None:
        known = self._dims.get(collection)
        if known is not None and known != dim:
            raise StoreError(f"collection {collection} holds {known}-d vectors, not {dim}-d")
        state = self.describe(collection)
        if state is None:
            meta = self.root / collection / _COLLECTION_FILE
            meta.parent.mkdir(parents=True, exist_ok=True)
            record = {"dim": dim, "backend": self.backend, "identity": self._own_identity()}
            _write_json(meta, record)
        elif state.dim != dim:
            raise StoreError(f"collection {collection} holds {state.dim}-d vectors, not {dim}-d")
        self._dims[collection] = dim

    def describe(self, collection: str) -> CollectionState | None:
        meta = self.root / collection / _COLLECTION_FILE
        if not meta.is_file():
            return None
        data = _read_json(meta)
        identity = data.get("identity")
        return CollectionState(int(data["dim"]), str(identity) if identity else None)

    def adopt(self, collection: str) -> str:
        meta = self.root / collection / _COLLECTION_FILE
        if not meta.is_file():
            raise StoreError(f"vector collection {collection} does not exist in {self.root}")
        identity = self._own_identity()
        _write_json(meta, {**_read_json(meta), "identity": identity})
        return identity

    def _dim(self, collection: str) -> int:
        if collection not in self._dims:
            state = self.describe(collection)
            if state is None:
                raise StoreError(f"vector collection {collection} does not exist in {self.root}")
            self._dims[collection] = state.dim
        return self._dims[collection]

    def shard_path(self, collection: str, domain: str) -> Path:
        if not _DOMAIN_RE.match(domain):
            raise StoreError(f"invalid domain name {domain!r}")
        return self.root / collection / domain

    def _existing(self, collection: str, domain: str) -> qe.EdgeShard | None:
        """The domain's shard, or None if it has never received a point."""
        if (collection, domain) in self._shards:
            return self._shards[(collection, domain)]
        if not (self.shard_path(collection, domain) / "edge_config.json").is_file():
            return None
        return self._open(collection, domain)

    def _busy(self, path: Path, domain: str) -> StoreBusyError:
        return StoreBusyError(
            f"the embedded vector store of domain {domain!r} ({path}) is open in "
            "another process; the embedded store serves one process per domain — "
            "wait for it, or use a Qdrant server (KNNVOCAB_QDRANT_URL)"
        )

    def _lock(self, collection: str, domain: str) -> int:
        """Lock the domain's shard for this process before qdrant-edge touches it: opening
        a shard that another process holds damages that process's files, so a second
        process must be refused before it opens anything. Returns the lock's descriptor."""
        path = self.root / collection / f"{domain}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise self._busy(self.shard_path(collection, domain), domain) from None
        return fd

    def _unlock(self, collection: str, domain: str) -> None:
        fd = self._locks.pop((collection, domain), None)
        if fd is not None:
            os.close(fd)

    def _open(self, collection: str, domain: str) -> qe.EdgeShard:
        """The domain's shard, created (with its payload indexes) if missing."""
        key = (collection, domain)
        if key in self._shards:
            return self._shards[key]
        path = self.shard_path(collection, domain)
        self._locks[key] = self._lock(collection, domain)
        try:
            if (path / "edge_config.json").is_file():
                shard = qe.EdgeShard.load(str(path))
            else:
                shard = qe.EdgeShard.create(str(path), shard_config(self._dim(collection)))
                create_indexes(shard)
        except Exception as exc:
            self._unlock(collection, domain)
            if "WouldBlock" in str(exc) or "lock" in str(exc).lower():
                raise self._busy(path, domain) from None
            raise StoreError(f"cannot open vector shard {path}: {exc}") from None
        self._shards[key] = shard
        return shard

    # VectorStore ----------------------------------------------------------------------

    def open_domain(self, collection: str, domain: str) -> None:
        self._open(collection, domain)

    def insert(self, collection: str, domain: str, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        shard = self._open(collection, domain)
        for p in points:
            if p.payload.domain != domain:
                raise StoreError(f"point {p.id} has domain {p.payload.domain!r}, not {domain!r}")
        batch = [
            qe.Point(id=p.id, vector=p.vector.tolist(), payload=p.payload.to_dict()) for p in points
        ]
        shard.update(qe.UpdateOperation.upsert_points(batch, update_mode=qe.UpdateMode.InsertOnly))

    def existing(self, collection: str, domain: str, ids: Sequence[str]) -> set[str]:
        shard = self._existing(collection, domain)
        if shard is None or not ids:
            return set()
        records = shard.retrieve(list(ids), with_payload=["domain"], with_vector=False)
        return {str(r.id) for r in records if (r.payload or {}).get("domain") == domain}

    def search(
        self, collection: str, flt: PointFilter, vectors: np.ndarray, k: int, exact: bool = False
    ) -> list[list[Hit]]:
        shard = self._existing(collection, flt.domain)
        if shard is None or len(vectors) == 0:
            return [[] for _ in range(len(vectors))]
        f = edge_filter(flt)
        params = (
            qe.SearchParams(exact=True, quantization=qe.QuantizationSearchParams(ignore=True))
            if exact
            else qe.SearchParams(
                hnsw_ef=max(self.hnsw_ef, k),
                quantization=qe.QuantizationSearchParams(
                    rescore=True, oversampling=RESCORE_OVERSAMPLING
                ),
            )
        )
        requests = [
            qe.QueryRequest(
                limit=k,
                query=qe.Query.Nearest(v.tolist()),
                filter=f,
                with_payload=True,
                params=params,
            )
            for v in np.asarray(vectors, np.float32)
        ]
        results = shard.query_batch(qe.QueryBatchRequest(requests))
        return [
            [
                Hit(str(p.id), float(p.score), PointPayload.from_dict(p.payload or {}))
                for p in points
            ]
            for points in results
        ]

    def count(self, collection: str, flt: PointFilter) -> int:
        shard = self._existing(collection, flt.domain)
        if shard is None:
            return 0
        return int(shard.count(qe.CountRequest(exact=True, filter=edge_filter(flt))))

    def counts_by(self, collection: str, flt: PointFilter, key: str) -> dict[Any, int]:
        shard = self._existing(collection, flt.domain)
        if shard is None:
            return {}
        response = shard.facet(
            qe.FacetRequest(key=key, limit=1_000_000, exact=True, filter=edge_filter(flt))
        )
        return {hit.value: int(hit.count) for hit in response.hits}

    def delete(self, collection: str, flt: PointFilter) -> None:
        shard = self._existing(collection, flt.domain)
        if shard is not None:
            shard.update(qe.UpdateOperation.delete_points_by_filter(edge_filter(flt)))

    def set_removed_in(self, collection: str, flt: PointFilter, version: int | None) -> None:
        shard = self._existing(collection, flt.domain)
        if shard is None:
            return
        if version is None:
            op = qe.UpdateOperation.delete_payload_by_filter(edge_filter(flt), ["removed_in"])
        else:
            op = qe.UpdateOperation.set_payload_by_filter(edge_filter(flt), {"removed_in": version})
        shard.update(op)

    def scroll(
        self, collection: str, flt: PointFilter, with_vectors: bool = False
    ) -> Iterator[StoredPoint]:
        shard = self._existing(collection, flt.domain)
        if shard is None:
            return
        f = edge_filter(flt)
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

    def optimize(self, collection: str, domain: str) -> None:
        shard = self._existing(collection, domain)
        if shard is not None:
            shard.optimize()

    def indexed_vectors(self, collection: str, domain: str) -> int:
        """How many of the domain's vectors are in an HNSW graph (0: searches scan)."""
        shard = self._existing(collection, domain)
        return 0 if shard is None else int(shard.info().indexed_vectors_count)

    def domains(self, collection: str) -> list[str]:
        """Domains that have a shard in ``collection``."""
        folder = self.root / collection
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if (p / "edge_config.json").is_file())

    def drop_domain(self, collection: str, domain: str) -> None:
        """Delete the domain's points, then close and remove its shard directory.

        Deleting first opens the shard, so a shard open in another process is refused
        (`StoreBusyError`) instead of being removed under it.
        """
        import shutil

        self.delete(collection, PointFilter(domain=domain))
        shard = self._shards.pop((collection, domain), None)
        if shard is not None:
            shard.close()
        path = self.shard_path(collection, domain)
        if path.is_dir():
            shutil.rmtree(path)
        if (collection, domain) in self._locks:
            (self.root / collection / f"{domain}.lock").unlink(missing_ok=True)
            self._unlock(collection, domain)

    def flush(self) -> None:
        for shard in self._shards.values():
            shard.flush()

    def close(self) -> None:
        for shard in self._shards.values():
            shard.flush()
            shard.close()
        self._shards.clear()
        for collection, domain in list(self._locks):
            self._unlock(collection, domain)
