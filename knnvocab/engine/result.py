"""The validated result of segmenting one image."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

UNLABELLED = 0  #: index-PNG value of pixels no proposal covers


@dataclass(frozen=True)
class Neighbour:
    """A stored instance behind a retrieval decision, with its provenance."""

    point_id: str
    similarity: float
    weight: float
    class_id: int
    label: str
    dataset: str
    image: str
    instance: str
    added_in: int

    def to_json(self) -> dict[str, Any]:
        return {
            "point_id": self.point_id,
            "similarity": round(self.similarity, 6),
            "weight": round(self.weight, 6),
            "class_id": self.class_id,
            "label": self.label,
            "dataset": self.dataset,
            "image": self.image,
            "instance": self.instance,
            "added_in": self.added_in,
        }


@dataclass(frozen=True)
class Segment:
    """One proposal and the decision about it.

    ``p_base``, ``p_ret`` and ``p_final`` are (C,) float32 over the vocabulary's class ids
    (in `Segmentation.class_ids` order).
    """

    id: int
    class_id: int
    label: str
    score: float
    source: str  # "retrieval" (fused) or "zero-shot"
    area: int
    bbox: tuple[int, int, int, int]  # x, y, width, height in pixels
    p_base: npt.NDArray[np.float32]
    p_ret: npt.NDArray[np.float32]
    p_final: npt.NDArray[np.float32]
    neighbours: list[Neighbour] = field(default_factory=list)

    def to_json(self, class_ids: list[int], names: dict[int, str], top: int) -> dict[str, Any]:
        def best(p: npt.NDArray[np.float32]) -> dict[str, Any]:
            i = int(np.argmax(p)) if len(p) else 0
            cid = class_ids[i] if class_ids else UNLABELLED
            return {
                "label": names.get(cid, "unlabelled"),
                "score": round(float(p[i]) if len(p) else 0.0, 6),
            }

        return {
            "id": self.id,
            "class_id": self.class_id,
            "label": self.label,
            "score": round(self.score, 6),
            "source": self.source,
            "area": self.area,
            "bbox": list(self.bbox),
            "zero_shot": best(self.p_base),
            "retrieval": best(self.p_ret),
            "neighbours": [n.to_json() for n in self.neighbours[:top]],
        }


@dataclass(frozen=True, eq=False)
class Segmentation:
    """The segmentation of one image in one domain at one version.

    Attributes:
        labels: (H, W) int32, the class id of every pixel (0 = unlabelled).
        segment_map: (H, W) int32, the proposal id of every pixel (0 = none).
        segments: one `Segment` per proposal id 1..P, in id order.
        class_ids: the vocabulary at ``version`` (live class ids, ascending).
        names: class id -> class name, for every id in ``class_ids``.
        reproducible: False once a purge deleted points this version showed: the output
            then differs from what the version gave before the purge.
    """

    domain: str
    version: int
    encoder: str
    params: dict[str, Any]
    labels: npt.NDArray[np.int32]
    segment_map: npt.NDArray[np.int32]
    segments: list[Segment]
    class_ids: list[int]
    names: dict[int, str]
    reproducible: bool = True

    def __post_init__(self) -> None:
        for what, arr in (("labels", self.labels), ("segment_map", self.segment_map)):
            if not (isinstance(arr, np.ndarray) and arr.ndim == 2 and arr.dtype == np.int32):
                raise ValueError(
                    f"Segmentation.{what}: expected (H, W) int32, got "
                    f"{getattr(arr, 'shape', None)} {getattr(arr, 'dtype', None)}"
                )
        if self.labels.shape != self.segment_map.shape:
            raise ValueError(
                f"Segmentation: labels {self.labels.shape} and segment_map "
                f"{self.segment_map.shape} differ in shape"
            )
        if [s.id for s in self.segments] != list(range(1, len(self.segments) + 1)):
            raise ValueError("Segmentation.segments: expected ids 1..P in order")
        unknown = set(np.unique(self.labels).tolist()) - set(self.class_ids) - {UNLABELLED}
        if unknown:
            raise ValueError(
                f"Segmentation.labels: class ids {sorted(unknown)} not in the vocabulary"
            )

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.labels.shape[0]), int(self.labels.shape[1])

    def segment_at(self, x: int, y: int) -> Segment | None:
        """The segment covering pixel (x, y) (column, row), or None."""
        h, w = self.shape
        if not (0 <= x < w and 0 <= y < h):
            raise ValueError(f"pixel ({x}, {y}) is outside the {w}x{h} image")
        sid = int(self.segment_map[y, x])
        return self.segments[sid - 1] if sid else None

    def to_json(self, evidence: int = 5) -> dict[str, Any]:
        """Everything but the pixels: deterministic, so equal inputs give equal bytes."""
        h, w = self.shape
        return {
            "domain": self.domain,
            "version": self.version,
            "reproducible": self.reproducible,
            "encoder": self.encoder,
            "width": w,
            "height": h,
            "params": self.params,
            "classes": {
                str(UNLABELLED): "unlabelled",
                **{str(c): self.names[c] for c in self.class_ids},
            },
            "segments": [s.to_json(self.class_ids, self.names, evidence) for s in self.segments],
        }
