"""Semantic segmentation metrics: mIoU, pixel accuracy, mean accuracy.

One accumulator, `SemanticConfusion`, holds a confusion matrix; memory does not grow with
the number of images. Two conventions for the *mean* IoU are offered because published
numbers use both:

``"detectron2"`` (default; detectron2 ``SemSegEvaluator``)
    IoU is computed, and averaged, only over classes with at least one ground-truth pixel.
    A class that is predicted but absent from the ground truth gets IoU NaN and does not
    count. (detectron2 keeps ``iou_valid = acc_valid & (union > 0)``, and ``acc_valid`` is
    ``gt pixels > 0``, which implies ``union > 0``.)

``"mmseg"`` (mmsegmentation ``IoUMetric``)
    ``IoU = intersection / union`` per class and ``mIoU = nanmean(IoU)``: only classes with
    ``union == 0`` (neither in the ground truth nor predicted) are NaN. A class predicted
    but absent from the ground truth has IoU 0 and *does* count, so mmseg's mIoU is never
    above detectron2's on the same confusion matrix.

Both conventions agree on everything else: per-class accuracy (recall) is NaN for classes
without ground-truth pixels, mean accuracy averages the others, pixel accuracy is
``correct / labelled`` pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from knnvocab.evaluate._checks import LabelMap, check_int, check_label_map, fail

Convention = Literal["detectron2", "mmseg"]
CONVENTIONS: tuple[str, ...] = get_args(Convention)

FloatVector = npt.NDArray[np.float64]
BoolVector = npt.NDArray[np.bool_]


def _mean(values: FloatVector) -> float:
    # sum / count, as detectron2 and np.nanmean do, and NaN (not a warning) when empty
    return float(np.sum(values) / values.size) if values.size else float("nan")


@dataclass(frozen=True, eq=False)
class SemanticResult:
    """Scores from one `SemanticConfusion`. Fractions in [0, 1]; NaN where undefined.

    Attributes:
        miou: mean of ``per_class_iou`` over the non-NaN classes (which classes depends on
            ``convention``; see the module docstring). NaN if no class counts.
        pixel_accuracy: correctly predicted / labelled (non-ignored) pixels.
        mean_accuracy: mean of ``per_class_accuracy`` over classes in the ground truth.
        per_class_iou: (C,) float64, NaN for classes the convention excludes.
        per_class_accuracy: (C,) float64 recall ``tp / gt pixels``, NaN without gt pixels.
        present: (C,) bool, True for classes with at least one ground-truth pixel.
        convention: ``"detectron2"`` or ``"mmseg"``.
    """

    miou: float
    pixel_accuracy: float
    mean_accuracy: float
    per_class_iou: FloatVector
    per_class_accuracy: FloatVector
    present: BoolVector
    convention: Convention

    def __post_init__(self) -> None:
        if self.convention not in CONVENTIONS:
            raise fail("convention", f"one of {CONVENTIONS}", repr(self.convention))
        n = self.present.shape
        for name in ("per_class_iou", "per_class_accuracy"):
            shape = getattr(self, name).shape
            if len(n) != 1 or shape != n:
                raise fail(name, f"shape {n} like present", shape)

    @property
    def num_classes(self) -> int:
        """C, the length of the per-class vectors."""
        return int(self.present.shape[0])

    def to_dict(self, class_names: list[str] | None = None) -> dict[str, object]:
        """JSON-ready summary; NaN becomes None; per-class keys are names or indices."""
        names = class_names or [str(i) for i in range(self.num_classes)]
        if len(names) != self.num_classes:
            raise fail("class_names", f"{self.num_classes} names", len(names))

        def num(x: float) -> float | None:
            return None if np.isnan(x) else float(x)

        return {
            "convention": self.convention,
            "mIoU": num(self.miou),
            "pixel_accuracy": num(self.pixel_accuracy),
            "mean_accuracy": num(self.mean_accuracy),
            "IoU": {n: num(v) for n, v in zip(names, self.per_class_iou, strict=True)},
            "accuracy": {n: num(v) for n, v in zip(names, self.per_class_accuracy, strict=True)},
        }


class SemanticConfusion:
    """Accumulates a confusion matrix of semantic label maps over any number of images.

    Rows are ground-truth classes, columns predicted classes (``confusion[g, p]`` pixels).
    Ground-truth pixels equal to ``ignore_index`` are left out. Predictions are never left
    out: a predicted value outside ``[0, C)`` (negative, ``>= C``, or ``ignore_index``
    itself) is counted in an extra *void-prediction* column, ``void_predictions[g]``. Such
    a pixel is wrong for its ground-truth class ``g`` (it lowers g's IoU and accuracy) and
    is a false positive of no class. (detectron2 would drop a prediction equal to C and
    crash on larger ones; mmseg drops them from the prediction histogram only, which is
    what this column does.)

    Args:
        num_classes: C >= 1; valid labels are 0 … C-1.
        ignore_index: ground-truth value to skip; must lie outside ``[0, C)``.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes = check_int(num_classes, "num_classes", minimum=1)
        self.ignore_index = check_int(ignore_index, "ignore_index")
        if 0 <= self.ignore_index < self.num_classes:
            raise fail(
                "ignore_index",
                f"a value outside the class range [0, {self.num_classes})",
                self.ignore_index,
            )
        self.num_images = 0
        self._matrix = np.zeros((self.num_classes, self.num_classes + 1), np.int64)

    @property
    def confusion(self) -> npt.NDArray[np.int64]:
        """(C, C) int64 copy: ``[g, p]`` = pixels of ground truth g predicted as p."""
        return self._matrix[:, : self.num_classes].copy()

    @property
    def void_predictions(self) -> npt.NDArray[np.int64]:
        """(C,) int64 copy: pixels of ground truth g predicted outside ``[0, C)``."""
        return self._matrix[:, self.num_classes].copy()

    def update(self, pred: LabelMap, gt: LabelMap) -> None:
        """Add one image.

        Args:
            pred: (H, W) integer class index per pixel (any integer dtype).
            gt: (H, W) integer, values in ``[0, C)`` or ``ignore_index``.

        Raises:
            ValueError: not 2-D integer arrays, shapes differ, or a ground-truth value is
                neither a class nor ``ignore_index`` (a dataset/class-list mismatch).
        """
        pred = check_label_map(pred, "pred")
        gt = check_label_map(gt, "gt")
        if pred.shape != gt.shape:
            raise fail("pred", f"the ground-truth shape {gt.shape}", pred.shape)
        c = self.num_classes
        keep = gt != self.ignore_index
        g = gt[keep].astype(np.int64)
        bad = (g < 0) | (g >= c)
        if bad.any():
            values = np.unique(g[bad])[:10].tolist()
            raise fail("gt", f"labels in [0, {c}) or ignore_index {self.ignore_index}", values)
        p = pred[keep]
        p = np.where((p >= 0) & (p < c), p, c).astype(np.int64)
        counts = np.bincount(g * (c + 1) + p, minlength=c * (c + 1))
        self._matrix += counts.reshape(c, c + 1)
        self.num_images += 1

    def merge(self, other: SemanticConfusion) -> None:
        """Add ``other``'s counts to this accumulator in place (e.g. from another worker)."""
        if not isinstance(other, SemanticConfusion):
            raise fail("other", "a SemanticConfusion", type(other).__name__)
        mine = (self.num_classes, self.ignore_index)
        theirs = (other.num_classes, other.ignore_index)
        if mine != theirs:
            raise fail("other (num_classes, ignore_index)", mine, theirs)
        self._matrix += other._matrix
        self.num_images += other.num_images

    def result(self, convention: Convention = "detectron2") -> SemanticResult:
        """Scores of everything accumulated so far; see the module docstring."""
        if convention not in CONVENTIONS:
            raise fail("convention", f"one of {CONVENTIONS}", repr(convention))
        return semantic_scores(self._matrix, convention)


def semantic_scores(matrix: npt.NDArray[np.int64], convention: Convention) -> SemanticResult:
    """Scores from a (C, C) or (C, C+1) count matrix (rows gt, columns pred, last = void)."""
    c = matrix.shape[0]
    if matrix.ndim != 2 or matrix.shape[1] not in (c, c + 1):
        raise fail("matrix", "(C, C) or (C, C+1)", matrix.shape)
    tp = np.diagonal(matrix[:, :c]).astype(np.float64)
    gt_pixels = matrix.sum(axis=1).astype(np.float64)
    pred_pixels = matrix[:, :c].sum(axis=0).astype(np.float64)
    union = gt_pixels + pred_pixels - tp
    present = gt_pixels > 0
    counted = present if convention == "detectron2" else union > 0
    acc = np.full(c, np.nan)
    acc[present] = tp[present] / gt_pixels[present]
    iou = np.full(c, np.nan)
    iou[counted] = tp[counted] / union[counted]
    total = gt_pixels.sum()
    for array in (acc, iou, present):
        array.setflags(write=False)
    return SemanticResult(
        miou=_mean(iou[counted]),
        pixel_accuracy=float(tp.sum() / total) if total else float("nan"),
        mean_accuracy=_mean(acc[present]),
        per_class_iou=iou,
        per_class_accuracy=acc,
        present=present,
        convention=convention,
    )
