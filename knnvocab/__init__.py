"""knnvocab: training-free, continually expanding open-vocabulary segmentation (kNN-CLIP)
on a vector database, with an audited vocabulary history per domain."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("knnvocab")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
