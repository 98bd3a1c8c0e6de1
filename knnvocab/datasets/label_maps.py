"""Reading per-pixel label maps (index PNGs) and checking them against their image."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from knnvocab.errors import DatasetError
from knnvocab.imageio import load_label_png
from knnvocab.types import IntArray


def check_size(path: Path, mask_shape: tuple[int, ...], image_shape: tuple[int, ...]) -> None:
    """Raise DatasetError naming ``path`` unless the (H, W) of a mask matches its image."""
    if tuple(mask_shape[:2]) != tuple(image_shape[:2]):
        raise DatasetError(
            path,
            f"mask is {mask_shape[1]}x{mask_shape[0]} but its image is "
            f"{image_shape[1]}x{image_shape[0]}",
        )


def read_index_mask(path: Path, image_shape: tuple[int, ...], max_pixels: int) -> IntArray:
    """Decode a single-channel label PNG as (H, W) int64 and check it matches the image.

    Palette PNGs give palette indices; RGB images are refused with an ImageError.
    """
    labels = load_label_png(path, max_pixels)
    if labels.ndim != 2:
        raise DatasetError(path, f"expected a single-channel mask, got shape {labels.shape}")
    check_size(path, labels.shape, image_shape)
    return labels


def check_values(
    path: Path, values: Iterable[int], allowed: int, what: str = "class id", ignore: int = -1
) -> None:
    """Raise DatasetError naming ``path`` unless every value (but ``ignore``) is < allowed."""
    for value in values:
        if value != ignore and not 0 <= value < allowed:
            raise DatasetError(path, f"{what} {value} is not in the class list ({allowed} classes)")


def present(labels: npt.NDArray[np.integer]) -> list[int]:
    """The distinct values of a label map, ascending, as Python ints."""
    return [int(v) for v in np.unique(labels)]
