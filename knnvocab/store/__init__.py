"""Vector stores: the embedded qdrant-edge default and a Qdrant server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from knnvocab.store.base import Hit, PointFilter, StoredPoint, VectorStore, point_id
from knnvocab.store.payload import INDEXED_FIELDS, PointPayload

if TYPE_CHECKING:
    from knnvocab.config import Settings


def open_store(settings: Settings) -> VectorStore:
    """The store the settings select: embedded under ``home``, or the server URL."""
    if settings.qdrant_url is None:
        from knnvocab.store.edge import EdgeStore

        return EdgeStore(settings.vectors_dir, wait=settings.store_wait)
    from knnvocab.store.server import ServerStore

    return ServerStore.connect(settings.qdrant_url, settings.qdrant_api_key)


__all__ = [
    "INDEXED_FIELDS",
    "Hit",
    "PointFilter",
    "PointPayload",
    "StoredPoint",
    "VectorStore",
    "open_store",
    "point_id",
]
