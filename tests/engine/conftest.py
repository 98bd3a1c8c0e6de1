"""An ingested domain to segment in: the three labelme VOC photos, tiny real model."""

from __future__ import annotations

from pathlib import Path

import pytest

from knnvocab.config import Settings
from knnvocab.embed.spec import EncoderSpec
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.workspace import Workspace


@pytest.fixture
def settings(sqlite_settings: Settings) -> Settings:
    """The engine reads the catalog through the same code on both databases (the catalog
    and lifecycle tests run on both); here SQLite keeps the suite fast."""
    return sqlite_settings


@pytest.fixture
def kitchen(ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path) -> Workspace:
    """Domain ``kitchen`` at version 1: every instance of the 3 photos (min_area 1)."""
    ingest(ws, "kitchen", labelme_voc, IngestOptions("voc", min_area=1), tiny_model, actor="tester")
    return ws


@pytest.fixture
def photos(labelme_voc: Path) -> list[Path]:
    return sorted((labelme_voc / "JPEGImages").glob("*.jpg"))
