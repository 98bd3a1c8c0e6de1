"""Dataset readers: a registry from format name to reader class.

The format names are what the catalog records for every ingested dataset.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from knnvocab.datasets.base import DatasetReader, SampleRef
from knnvocab.errors import ConfigError

FORMATS: dict[str, type[DatasetReader]] = {}


def register(cls: type[DatasetReader]) -> type[DatasetReader]:
    FORMATS[cls.format] = cls
    return cls


def list_formats() -> dict[str, str]:
    """Format name -> one-line description, sorted by name."""
    _load_builtin()
    return {name: FORMATS[name].description for name in sorted(FORMATS)}


def open_dataset(format: str, root: Path, **options: Any) -> DatasetReader:
    """Open ``root`` with the reader registered as ``format``."""
    _load_builtin()
    try:
        cls = FORMATS[format]
    except KeyError:
        known = ", ".join(sorted(FORMATS))
        raise ConfigError(f"unknown dataset format {format!r} (known: {known})") from None
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


def _load_builtin() -> None:
    # imported here so that importing knnvocab.datasets stays cheap
    from knnvocab.datasets import (  # noqa: F401
        ade20k,
        cityscapes,
        coco,
        coco_panoptic,
        index_masks,
        labelme,
        voc,
    )


__all__ = ["FORMATS", "DatasetReader", "SampleRef", "list_formats", "open_dataset", "register"]
