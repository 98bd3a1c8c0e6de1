"""The segmentation engine: per-domain kNN-CLIP at a chosen vocabulary version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from knnvocab.engine.params import SegmentParams
from knnvocab.engine.result import Neighbour, Segment, Segmentation
from knnvocab.types import ImageArray
from knnvocab.workspace import Workspace


def segment(
    ws: Workspace,
    image: ImageArray | Path | str,
    domain: str,
    version: int | None = None,
    **params: Any,
) -> Segmentation:
    """Segment one image (an (H, W, 3) uint8 array or a file) in ``domain`` at
    ``version`` (None: the head). ``params`` are `SegmentParams` fields."""
    from knnvocab.engine.segmenter import Segmenter
    from knnvocab.imageio import load_rgb

    path = None
    if isinstance(image, str | Path):
        path = Path(image)
        image = load_rgb(path, ws.settings.max_image_pixels)
    return Segmenter(ws, domain, version, SegmentParams(**params)).segment(image, path)


__all__ = ["Neighbour", "Segment", "SegmentParams", "Segmentation", "segment"]
