"""COCO run-length encoding, checked: pycocotools decodes malformed input into garbage
memory without an error, so every RLE from a user is validated before it sees it."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from knnvocab.errors import InputError


@contextmanager
def quiet() -> Iterator[None]:
    """pycocotools' Cython ``__array__`` predates numpy 2's ``copy`` keyword."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        yield


def compressed_counts(
    text: str, path: Path | str, where: str, error: type[InputError] = InputError
) -> list[int]:
    """Decode COCO's compressed RLE string into run lengths (mirrors ``rleFrString``)."""
    runs: list[int] = []
    pos = 0
    while pos < len(text):
        value, shift, more = 0, 0, True
        while more:
            code = ord(text[pos]) - 48 if pos < len(text) else -1
            if not 0 <= code < 64:
                raise error(path, f"{where}: malformed compressed RLE counts")
            value |= (code & 0x1F) << (5 * shift)
            more = bool(code & 0x20)
            pos += 1
            shift += 1
            if not more and code & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def check_runs(
    runs: list[Any], total: int, path: Path | str, where: str, error: type[InputError] = InputError
) -> None:
    """Run lengths must be non-negative integers covering exactly ``total`` pixels."""
    if not all(isinstance(r, int) and not isinstance(r, bool) and r >= 0 for r in runs):
        raise error(path, f"{where}: RLE counts must be non-negative integers")
    if sum(runs) != total:
        raise error(path, f"{where}: RLE counts cover {sum(runs)} pixels, the image has {total}")


def decode(
    rle: Any,
    shape: tuple[int, int],
    path: Path | str,
    where: str,
    error: type[InputError] = InputError,
) -> npt.NDArray[np.bool_]:
    """A checked ``{"size": [H, W], "counts": str | list}`` -> (H, W) bool mask."""
    from pycocotools import mask as mask_utils

    if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
        raise error(path, f"{where}: expected an RLE object with size and counts")
    if list(rle["size"]) != list(shape):
        raise error(path, f"{where}: RLE size {list(rle['size'])} differs from {list(shape)}")
    counts = rle["counts"]
    runs = compressed_counts(counts, path, where, error) if isinstance(counts, str) else counts
    if not isinstance(runs, list):
        raise error(path, f"{where}: RLE counts must be a string or a list")
    check_runs(runs, shape[0] * shape[1], path, where, error)
    with quiet():
        if isinstance(counts, str):
            obj = {"size": list(shape), "counts": counts.encode("ascii")}
        else:
            obj = mask_utils.frPyObjects({"size": list(shape), "counts": runs}, *shape)
        return np.asarray(mask_utils.decode(obj), dtype=bool)


def encode(mask: npt.NDArray[np.bool_]) -> dict[str, Any]:
    """(H, W) bool -> ``{"size": [H, W], "counts": str}`` (compressed, JSON-ready)."""
    from pycocotools import mask as mask_utils

    with quiet():
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
