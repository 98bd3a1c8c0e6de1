"""Input checks shared by the metric modules; each raises ValueError "expected …, got …"."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

LabelMap = npt.NDArray[np.integer[Any]]


def fail(what: str, expected: object, got: object) -> ValueError:
    """The ValueError to raise when ``what`` is not ``expected``."""
    return ValueError(f"{what}: expected {expected}, got {got}")


def check_int(value: object, what: str, minimum: int | None = None) -> int:
    """``value`` as an int; bools, floats and values below ``minimum`` are rejected."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise fail(what, "an int", repr(value))
    if minimum is not None and value < minimum:
        raise fail(what, f"an int >= {minimum}", value)
    return int(value)


def check_label_map(array: object, what: str) -> LabelMap:
    """``array`` if it is an (H, W) ndarray of any integer dtype, else raise ValueError."""
    shape = getattr(array, "shape", type(array).__name__)
    dtype = getattr(array, "dtype", "")
    ok = (
        isinstance(array, np.ndarray) and array.ndim == 2 and np.issubdtype(array.dtype, np.integer)
    )
    if not ok:
        raise fail(what, "an (H, W) integer ndarray", f"{shape} {dtype}".strip())
    return array  # type: ignore[return-value]
