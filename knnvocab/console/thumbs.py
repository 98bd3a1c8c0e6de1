"""Thumbnails of stored instances, cropped from their source images: the dataset folder
an ingest recorded, read again with the same reader, the instance's mask's bounding box
cut out (the rest of the crop dimmed). Where the source is gone, pages show the
instance's provenance as text instead."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image

from knnvocab.catalog.domains import get_domain
from knnvocab.datasets.base import DatasetReader, SampleRef
from knnvocab.errors import KnnvocabError, NotFoundError
from knnvocab.lifecycle.reembed_sources import Source, recorded_sources
from knnvocab.workspace import Workspace

#: the longest side of a thumbnail, in pixels
SIZE = 128
_READERS = 8
_THUMBS = 1024


class Thumbnails:
    """A process's thumbnail maker: opened readers and made PNGs, each a bounded cache."""

    def __init__(self, ws: Workspace, max_pixels: int) -> None:
        self.ws, self.max_pixels = ws, max_pixels
        self._readers: OrderedDict[int, tuple[DatasetReader, dict[str, SampleRef]]] = OrderedDict()
        self._pngs: OrderedDict[tuple[str, str, str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def readable(self, domain: str, datasets: set[str]) -> set[str]:
        """The dataset names among ``datasets`` whose recorded source folder exists."""
        with self.ws.catalog.session() as s:
            sources = recorded_sources(s, get_domain(s, domain), datasets)
        return {name for name, src in sources.items() if Path(src.root).is_dir()}

    def png(self, domain: str, dataset: str, image: str, instance: str) -> bytes:
        """The PNG of one instance (``instance`` as stored: a restored copy's key ends in
        ``@restored{N}``), or NotFoundError / a dataset error."""
        key = (domain, dataset, image, instance)
        with self._lock:
            made = self._pngs.get(key)
        if made is not None:
            return made
        made = self._make(domain, dataset, image, instance.split("@restored")[0])
        with self._lock:
            self._pngs[key] = made
            while len(self._pngs) > _THUMBS:
                self._pngs.popitem(last=False)
        return made

    def _make(self, domain: str, dataset: str, image: str, instance: str) -> bytes:
        reader, refs = self._reader(domain, dataset)
        if image not in refs:
            raise NotFoundError(f"dataset {dataset!r} has no image {image!r} any more")
        sample = reader.load(refs[image])
        keys = list(sample.instances.keys)
        if instance not in keys:
            raise NotFoundError(f"image {image!r} has no instance {instance!r} any more")
        mask = sample.instances.masks[keys.index(instance)]
        return crop_png(sample.image, mask)

    def _reader(self, domain: str, dataset: str) -> tuple[DatasetReader, dict[str, SampleRef]]:
        with self.ws.catalog.session() as s:
            sources = recorded_sources(s, get_domain(s, domain), {dataset})
        source: Source | None = sources.get(dataset)
        if source is None:
            raise NotFoundError(f"no published ingest read dataset {dataset!r}")
        with self._lock:
            cached = self._readers.get(source.dataset_id)
        if cached is None:
            reader, refs = source.open(self.max_pixels)
            cached = (reader, {r.key: r for r in refs})
            with self._lock:
                self._readers[source.dataset_id] = cached
                while len(self._readers) > _READERS:
                    self._readers.popitem(last=False)
        return cached


def crop_png(image: np.ndarray, mask: np.ndarray, size: int = SIZE) -> bytes:
    """A PNG of ``image`` (H, W, 3 uint8) cropped to the bounding box of ``mask`` (H, W
    bool) plus a small margin, pixels outside the mask dimmed, the longest side
    ``size``."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise KnnvocabError("the instance's mask is empty")
    h, w = mask.shape
    pad = max(2, int(0.05 * max(xs.max() - xs.min(), ys.max() - ys.min())))
    x0, x1 = max(0, int(xs.min()) - pad), min(w, int(xs.max()) + pad + 1)
    y0, y1 = max(0, int(ys.min()) - pad), min(h, int(ys.max()) + pad + 1)
    crop = image[y0:y1, x0:x1].astype(np.float32)
    inside = mask[y0:y1, x0:x1, None]
    crop = np.where(inside, crop, crop * 0.35 + 255 * 0.1).astype(np.uint8)
    out = Image.fromarray(crop)
    out.thumbnail((size, size))
    buffer = io.BytesIO()
    out.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
