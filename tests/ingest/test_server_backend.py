"""The same ingest on the server code path (qdrant-client), against QdrantClient(":memory:")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from knnvocab.config import Settings
from knnvocab.embed.spec import EncoderSpec
from knnvocab.history import vocabulary
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.store.base import PointFilter
from knnvocab.store.server import ServerStore
from knnvocab.workspace import Workspace


@pytest.fixture
def server_ws(settings: Settings) -> Iterator[Workspace]:
    with Workspace(settings, store=ServerStore(QdrantClient(location=":memory:"))) as ws:
        yield ws


def test_ingest_on_the_server_store(
    server_ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path
) -> None:
    ws = server_ws
    summary = ingest(ws, "kitchen", labelme_voc, IngestOptions("voc"), tiny_model, actor="tester")
    again = ingest(ws, "kitchen", labelme_voc, IngestOptions("voc"), actor="tester")
    assert (summary.total_added, again.total_added) == (15, 0)
    collection = ws.encoder(tiny_model).info.collection
    counts = ws.store.counts_by(collection, PointFilter("kitchen", visible_at=2), "class_id")
    snap = vocabulary(ws, "kitchen", 2)
    assert counts == {c.class_id: c.instances for c in snap.classes if c.instances}
    assert not (Path(ws.settings.home) / "vectors").exists()  # nothing went to the edge store
