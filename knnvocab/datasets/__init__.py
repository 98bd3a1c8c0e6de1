"""Dataset readers: a registry from format name to reader class.

The format names are what the catalog records for every ingested dataset. Each entry of
`FORMATS` is a builder that imports its reader module and returns the reader class, so
that importing knnvocab.datasets stays cheap.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from knnvocab.datasets.base import DatasetReader, SampleRef
from knnvocab.errors import ConfigError


def _index_masks() -> type[DatasetReader]:
    from knnvocab.datasets.index_masks import IndexMaskReader

    return IndexMaskReader


def _voc() -> type[DatasetReader]:
    from knnvocab.datasets.voc import VocReader

    return VocReader


def _coco() -> type[DatasetReader]:
    from knnvocab.datasets.coco import CocoReader

    return CocoReader


def _coco_panoptic() -> type[DatasetReader]:
    from knnvocab.datasets.coco_panoptic import CocoPanopticReader

    return CocoPanopticReader


def _labelme() -> type[DatasetReader]:
    from knnvocab.datasets.labelme import LabelmeReader

    return LabelmeReader


def _ade20k_150() -> type[DatasetReader]:
    from knnvocab.datasets.ade20k import Ade20k150Reader

    return Ade20k150Reader


def _ade20k_847() -> type[DatasetReader]:
    from knnvocab.datasets.ade20k import Ade20k847Reader

    return Ade20k847Reader


def _cityscapes() -> type[DatasetReader]:
    from knnvocab.datasets.cityscapes import CityscapesReader

    return CityscapesReader


#: format name -> builder returning its reader class (whose ``format`` is the same name)
FORMATS: dict[str, Callable[[], type[DatasetReader]]] = {
    "index-masks": _index_masks,
    "voc": _voc,
    "coco": _coco,
    "coco-panoptic": _coco_panoptic,
    "labelme": _labelme,
    "ade20k-150": _ade20k_150,
    "ade20k-847": _ade20k_847,
    "cityscapes": _cityscapes,
}


def list_formats() -> dict[str, str]:
    """Format name -> one-line description, sorted by name."""
    return {name: FORMATS[name]().description for name in sorted(FORMATS)}


def reader_class(format: str) -> type[DatasetReader]:
    """The reader class registered as ``format``; ConfigError naming the known ones."""
    try:
        build = FORMATS[format]
    except KeyError:
        known = ", ".join(sorted(FORMATS))
        raise ConfigError(f"unknown dataset format {format!r} (known: {known})") from None
    return build()


def open_dataset(format: str, root: Path, **options: Any) -> DatasetReader:
    """Open ``root`` with the reader registered as ``format``."""
    cls = reader_class(format)
    given = {k: v for k, v in options.items() if v is not None}
    accepted = [
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise ConfigError(
            f"format {format!r} has no option {', '.join(unknown)} "
            f"(its options: {', '.join(a for a in accepted if a != 'max_pixels') or 'none'})"
        )
    return cls(Path(root), **given)


__all__ = [
    "FORMATS",
    "DatasetReader",
    "SampleRef",
    "list_formats",
    "open_dataset",
    "reader_class",
]
