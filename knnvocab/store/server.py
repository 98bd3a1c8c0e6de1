"""The scaled-out store: a Qdrant server (or cluster) through qdrant-client.

One collection per encoder fingerprint; domains share it as tenants (keyword index with
``is_tenant``), and HNSW is built per tenant (``payload_m``) rather than globally (``m=0``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from knnvocab.errors import StoreError
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
from knnvocab.store.payload import (
    INDEXED_FIELDS,
    Above,
    AnyOf,
    AtMost,
    Condition,
    Equals,
    IndexedField,
    Missing,
    PointPayload,
)
from knnvocab.store.tuning import TUNING

_SCROLL_PAGE = 1024
#: collection metadata key holding the identity of the store the collection belongs to
_IDENTITY_KEY = "knnvocab_store_identity"


def _server_condition(c: Condition) -> Any:
    match c:
        case Equals(field, value):
            return qm.FieldCondition(key=field, match=qm.MatchValue(value=value))
        case AnyOf(field, values):
            return qm.FieldCondition(key=field, match=qm.MatchAny(any=list(values)))
        case AtMost(field, value):
            return qm.FieldCondition(key=field, range=qm.Range(lte=value))
        case Above(field, value):
            return qm.FieldCondition(key=field, range=qm.Range(gt=value))
        case Missing(field):
            return qm.IsEmptyCondition(is_empty=qm.PayloadField(key=field))
    raise TypeError(f"unknown filter condition {c!r}")


def server_filter(flt: PointFilter) -> qm.Filter:
    """A PointFilter as a qdrant-client Filter (always with the domain condition)."""
    conditions = flt.conditions()
    must = [_server_condition(c) for c in conditions.must]
    must_not = [_server_condition(c) for c in conditions.must_not]
    return qm.Filter(must=must, must_not=must_not or None)


def _hit(p: Any, with_payload: bool) -> Hit:
    payload = p.payload or {}
    full = PointPayload.from_dict(payload) if with_payload else None
    return Hit(str(p.id), float(p.score), int(payload.get("class_id", -1)), full)


def _server_index(f: IndexedField) -> Any:
    # as the embedded store: HNSW links only on the tenant key (edge_schema._edge_index)
    if f.kind == "keyword":
        return qm.KeywordIndexParams(
            type=qm.KeywordIndexType.KEYWORD, is_tenant=f.tenant, enable_hnsw=f.tenant
        )
    return qm.IntegerIndexParams(
        type=qm.IntegerIndexType.INTEGER, lookup=True, range=f.range, enable_hnsw=False
    )


class ServerStore:
    """`VectorStore` on a Qdrant server; ``client`` may be ``QdrantClient(":memory:")``."""

    backend = "qdrant-server"

    def __init__(self, client: QdrantClient, url: str = ":memory:") -> None:
        from qdrant_client.local.qdrant_local import QdrantLocal

        self.client = client
        self.url = url
        self._known: dict[str, int] = {}
        self.in_process = isinstance(getattr(client, "_client", None), QdrantLocal)

    @classmethod
    def connect(cls, url: str, api_key: str | None = None) -> ServerStore:
        if url == ":memory:":
            client = QdrantClient(location=":memory:")
        elif url.startswith("local:"):  # tests only: a stand-in kept on disk
            client = QdrantClient(path=url.removeprefix("local:"))
        else:
            client = QdrantClient(url=url, api_key=api_key, timeout=60)
        return cls(client, url=url)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # connection errors, unexpected responses
            reason = " ".join(str(exc).split())[:300]
            raise StoreError(f"Qdrant {what} failed: {reason}") from None

    @property
    def location(self) -> str:
        return self.url

    def ensure_collection(self, collection: str, dim: int) -> None:
        known = self._known.get(collection)
        if known is not None:
            if known != dim:
                raise StoreError(f"collection {collection} holds {known}-d vectors, not {dim}-d")
            return
        state = self.describe(collection)
        if state is None:
            self._call(
                "create collection",
                self.client.create_collection,
                collection,
                vectors_config=qm.VectorParams(size=dim, distance=qm.Distance.COSINE),
                hnsw_config=qm.HnswConfigDiff(
                    m=TUNING.m,
                    payload_m=TUNING.payload_m,
                    ef_construct=TUNING.ef_construct,
                    full_scan_threshold=TUNING.full_scan_threshold_kb,
                ),
                quantization_config=qm.ScalarQuantization(
                    scalar=qm.ScalarQuantizationConfig(
                        type=qm.ScalarType.INT8, quantile=TUNING.quantile, always_ram=True
                    )
                ),
                metadata={_IDENTITY_KEY: new_identity()},
            )
            self._create_indexes(collection)
        elif state.dim != dim:
            raise StoreError(f"collection {collection} holds {state.dim}-d vectors, not {dim}-d")
        self._known[collection] = dim

    def describe(self, collection: str) -> CollectionState | None:
        if not self._call("collection check", self.client.collection_exists, collection):
            return None
        config = self._call("collection info", self.client.get_collection, collection).config
        identity = (config.metadata or {}).get(_IDENTITY_KEY)
        return CollectionState(int(config.params.vectors.size), str(identity) if identity else None)

    def adopt(self, collection: str) -> str:
        identity = new_identity()
        self._call(
            "update collection",
            self.client.update_collection,
            collection,
            metadata={_IDENTITY_KEY: identity},
        )
        return identity

    def _create_indexes(self, collection: str) -> None:
        if self.in_process:
            return
        for f in INDEXED_FIELDS:
            index = _server_index(f)
            self._call("create index", self.client.create_payload_index, collection, f.name, index)

    def open_domain(self, collection: str, domain: str) -> None:
        """Domains share the server's collection; writers are serialised by the catalog."""

    def insert(self, collection: str, domain: str, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        for p in points:
            if p.payload.domain != domain:
                raise StoreError(f"point {p.id} has domain {p.payload.domain!r}, not {domain!r}")
        batch = [
            qm.PointStruct(id=p.id, vector=p.vector.tolist(), payload=p.payload.to_dict())
            for p in points
        ]
        self._call(
            "insert",
            self.client.upsert,
            collection,
            batch,
            wait=True,
            update_mode=qm.UpdateMode.INSERT_ONLY,
        )

    def existing(self, collection: str, domain: str, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        records = self._call(
            "retrieve",
            self.client.retrieve,
            collection,
            list(ids),
            with_payload=["domain"],
            with_vectors=False,
        )
        return {str(r.id) for r in records if (r.payload or {}).get("domain") == domain}

    def search(
        self,
        collection: str,
        flt: PointFilter,
        vectors: np.ndarray,
        k: int,
        exact: bool = False,
        with_payload: bool = True,
    ) -> list[list[Hit]]:
        if len(vectors) == 0:
            return []
        f = server_filter(flt)
        params: qm.SearchParams | None
        if self.in_process:  # local mode (tests) is exact and refuses search params
            params = None
        elif exact:
            params = qm.SearchParams(
                exact=True, quantization=qm.QuantizationSearchParams(ignore=True)
            )
        else:
            params = qm.SearchParams(
                hnsw_ef=max(TUNING.hnsw_ef, k),
                quantization=qm.QuantizationSearchParams(
                    rescore=True, oversampling=TUNING.oversampling
                ),
            )
        fields: Any = True if with_payload else ["class_id"]
        requests = [
            qm.QueryRequest(
                query=v.tolist(),
                filter=f,
                limit=search_limit(k, exact),
                with_payload=fields,
                params=params,
            )
            for v in np.asarray(vectors, np.float32)
        ]
        responses = self._call("search", self.client.query_batch_points, collection, requests)
        return [settle([_hit(p, with_payload) for p in r.points], k) for r in responses]

    def count(self, collection: str, flt: PointFilter) -> int:
        result = self._call(
            "count", self.client.count, collection, count_filter=server_filter(flt), exact=True
        )
        return int(result.count)

    def counts_by(self, collection: str, flt: PointFilter, key: str) -> dict[Any, int]:
        result = self._call(
            "facet",
            self.client.facet,
            collection,
            key,
            facet_filter=server_filter(flt),
            limit=1_000_000,
            exact=True,
        )
        return {hit.value: int(hit.count) for hit in result.hits}

    def delete(self, collection: str, flt: PointFilter) -> None:
        selector = qm.FilterSelector(filter=server_filter(flt))
        self._call("delete", self.client.delete, collection, points_selector=selector, wait=True)

    def set_removed_in(self, collection: str, flt: PointFilter, version: int | None) -> None:
        selector = qm.FilterSelector(filter=server_filter(flt))
        if version is None:
            clear = self.client.delete_payload
            self._call(
                "delete payload", clear, collection, ["removed_in"], points=selector, wait=True
            )
        else:
            payload = {"removed_in": version}
            self._call(
                "set payload",
                self.client.set_payload,
                collection,
                payload,
                points=selector,
                wait=True,
            )

    def scroll(
        self, collection: str, flt: PointFilter, with_vectors: bool = False
    ) -> Iterator[StoredPoint]:
        f = server_filter(flt)
        offset: Any = None
        while True:
            records, offset = self._call(
                "scroll",
                self.client.scroll,
                collection,
                scroll_filter=f,
                limit=_SCROLL_PAGE,
                offset=offset,
                with_payload=True,
                with_vectors=with_vectors,
            )
            for r in records:
                vec = as_vector(r.vector) if with_vectors else np.zeros(0, np.float32)
                yield StoredPoint(str(r.id), vec, PointPayload.from_dict(r.payload or {}))
            if offset is None:
                return

    def domains(self, collection: str) -> list[str]:
        if not self._call("collection check", self.client.collection_exists, collection):
            return []
        result = self._call(
            "facet", self.client.facet, collection, "domain", limit=1_000_000, exact=True
        )
        return sorted(str(hit.value) for hit in result.hits)

    def drop_domain(self, collection: str, domain: str) -> None:
        """Domains share the collection: deleting the points releases their storage."""
        if self._call("collection check", self.client.collection_exists, collection):
            self.delete(collection, PointFilter(domain=domain))

    def optimize(self, collection: str, domain: str) -> None:
        """The server indexes in the background; nothing to do here."""

    def flush(self) -> None:
        """Writes use ``wait=True``: durable when they return."""

    def close(self) -> None:
        self.client.close()
