"""The vector store protocol shared by the embedded (qdrant-edge) and server backends.

Every operation names one domain through a `PointFilter`, whose ``domain`` is required:
a query across tenants cannot be expressed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from knnvocab.store.payload import (
    Above,
    AnyOf,
    AtMost,
    Condition,
    Conditions,
    Equals,
    Missing,
    PointPayload,
)
from knnvocab.types import FloatArray

_NAMESPACE = uuid.UUID("5c0ad1e4-7b0e-4d55-9c7a-6b6e6e766f63")


def point_id(domain: str, dataset: str, image: str, instance: str, encoder: str) -> str:
    """UUIDv5 of an instance: the same instance always gets the same id, so re-ingesting
    or resuming never duplicates a point."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join((domain, dataset, image, instance, encoder))))


@dataclass(frozen=True)
class PointFilter:
    """The points of one domain an operation touches.

    Attributes:
        domain: required; every filter is a tenant filter.
        visible_at: points a reader of version v sees: ``added_in <= v`` and not
            ``removed_in <= v``.
        added_in / removed_in: exactly this version.
        added_after: ``added_in > v`` (points of versions beyond a head).
        live: True: no ``removed_in``; False: has one.
        class_ids / dataset: restrict to these classes / this dataset name.
    """

    domain: str
    visible_at: int | None = None
    added_in: int | None = None
    removed_in: int | None = None
    added_after: int | None = None
    live: bool | None = None
    class_ids: tuple[int, ...] | None = None
    dataset: str | None = None

    def __post_init__(self) -> None:
        if not self.domain:
            raise ValueError("PointFilter.domain is required: a query without a domain is a bug")

    def conditions(self) -> Conditions:
        """The points this filter admits, described once for every backend to translate;
        always with the domain condition."""
        must: list[Condition] = [Equals("domain", self.domain)]
        must_not: list[Condition] = []
        if self.visible_at is not None:  # added_in <= v and not removed_in <= v
            must.append(AtMost("added_in", self.visible_at))
            must_not.append(AtMost("removed_in", self.visible_at))
        if self.added_in is not None:
            must.append(Equals("added_in", self.added_in))
        if self.removed_in is not None:
            must.append(Equals("removed_in", self.removed_in))
        if self.added_after is not None:
            must.append(Above("added_in", self.added_after))
        if self.live is not None:
            (must if self.live else must_not).append(Missing("removed_in"))
        if self.class_ids is not None:
            must.append(AnyOf("class_id", self.class_ids))
        if self.dataset is not None:
            must.append(Equals("dataset", self.dataset))
        return Conditions(tuple(must), tuple(must_not))


@dataclass(frozen=True)
class StoredPoint:
    """One instance embedding: id (UUID string), (D,) float32 unit vector, payload."""

    id: str
    vector: FloatArray
    payload: PointPayload


@dataclass(frozen=True)
class CollectionState:
    """A collection as the store has it: its dimension and the identity of the store it
    was created in (None: made before stores had identities)."""

    dim: int
    identity: str | None


def new_identity() -> str:
    """A fresh store identity (random UUID string)."""
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Hit:
    """A neighbour: point id, cosine similarity, class id, and its payload when the search
    asked for it."""

    id: str
    score: float
    class_id: int
    payload: PointPayload | None = None


#: extra neighbours an exact search fetches, so that exact ties at the k-th place are
#: settled by point id rather than by where the engine happens to keep each point
TIE_MARGIN = 8


def search_limit(k: int, exact: bool) -> int:
    """How many neighbours to ask the engine for, to answer ``k``."""
    return k + TIE_MARGIN if exact else k


def settle(hits: list[Hit], k: int) -> list[Hit]:
    """The ``k`` best hits, exact ties in score ordered by point id. Engines order tied
    points (duplicate vectors: one photo in two datasets, a restored copy) by their
    internal offsets, which differ between a domain and its copy, move or restore; this
    makes ``--exact`` answers the same wherever the domain lives."""
    return sorted(hits, key=lambda h: (-h.score, h.id))[:k]


class VectorStore(Protocol):
    """What knnvocab needs from Qdrant; one collection per encoder fingerprint."""

    @property
    def backend(self) -> str:
        """``qdrant-edge`` or ``qdrant-server``."""

    @property
    def location(self) -> str:
        """Where the store is, for messages (a folder, a server URL)."""

    def ensure_collection(self, collection: str, dim: int) -> None:
        """Create the collection (and its payload indexes) if missing, carrying this store's
        identity; check its size."""

    def describe(self, collection: str) -> CollectionState | None:
        """The collection's size and identity, or None if it does not exist."""

    def adopt(self, collection: str) -> str:
        """Give an existing collection made before identities existed this store's
        identity; returns it."""

    def open_domain(self, collection: str, domain: str) -> None:
        """Make ``domain`` writable by this process: the embedded store takes the domain's
        lock (StoreBusyError if another process holds it); a server needs nothing."""

    def insert(self, collection: str, domain: str, points: Sequence[StoredPoint]) -> None:
        """Insert points of ``domain``; ids already present are left untouched."""

    def existing(self, collection: str, domain: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are stored in ``domain`` (lets a re-ingest skip known instances)."""

    def search(
        self,
        collection: str,
        flt: PointFilter,
        vectors: np.ndarray,
        k: int,
        exact: bool = False,
        with_payload: bool = True,
    ) -> list[list[Hit]]:
        """(Q, D) queries -> per query its top-``k`` hits, best first, in one batch;
        without ``with_payload`` the hits carry only id, score and class id (what the kNN
        vote needs; provenance is for the neighbours a caller shows).

        ``exact``: exhaustive scan of the float32 vectors (no HNSW, no quantization): the
        hits depend only on the points the filter admits, not on how the index was built,
        so a version's answers stay identical however much is ingested after it."""

    def count(self, collection: str, flt: PointFilter) -> int:
        """Exact number of points matching ``flt``."""

    def counts_by(self, collection: str, flt: PointFilter, key: str) -> dict[Any, int]:
        """Exact point counts per value of an indexed payload field ``key``."""

    def delete(self, collection: str, flt: PointFilter) -> None:
        """Delete every point matching ``flt``."""

    def set_removed_in(self, collection: str, flt: PointFilter, version: int | None) -> None:
        """Hide every point matching ``flt`` from ``version`` on (None: make them live
        again, removing the field)."""

    def domains(self, collection: str) -> list[str]:
        """Every domain that has points in ``collection`` (an administrative listing for
        consistency checks; never used to answer a query)."""

    def drop_domain(self, collection: str, domain: str) -> None:
        """Delete every point of ``domain`` and release the storage it used."""

    def scroll(
        self, collection: str, flt: PointFilter, with_vectors: bool = False
    ) -> Iterator[StoredPoint]:
        """Every point matching ``flt`` (vectors as empty arrays unless asked for)."""

    def optimize(self, collection: str, domain: str) -> None:
        """Build indexes after a bulk insert (HNSW, segment merge)."""

    def flush(self) -> None:
        """Make everything inserted so far durable."""

    def close(self) -> None:
        """Release files and connections."""


def as_vector(raw: Any, dim: int | None = None) -> FloatArray:
    """A backend's vector value (list, or {name: list}) -> (D,) float32."""
    if isinstance(raw, dict):
        raw = next(iter(raw.values()), [])
    if raw is None:
        return np.zeros(0 if dim is None else dim, np.float32)
    return np.asarray(raw, dtype=np.float32)
