"""Panoptic quality (PQ, SQ, RQ) exactly as panopticapi's ``pq_compute`` defines it.

Per image (``pq_compute_single_core``), with segment id 0 = void / unlabelled:

- A ground-truth segment g and a predicted segment p *match* iff they have the same
  category, g is not crowd, and ``IoU > 0.5`` (strictly), where
  ``IoU = |g ∩ p| / (|p| + |g| - |g ∩ p| - |p ∩ void|)``: the part of the prediction lying
  on void ground truth is left out of the union. A match is a TP and adds its IoU.
- A non-crowd ground-truth segment left unmatched is a FN.
- A prediction left unmatched is a FP, unless more than half of its area lies on void
  plus crowd ground truth *of its own category*; then it is ignored.
- Prediction pixels with id 0 are simply unpredicted: they lower the IoU of the
  ground-truth segment they cover.

Per category: ``PQ = Σ IoU / (TP + FP/2 + FN/2)``, ``SQ = Σ IoU / TP`` (0 if TP = 0),
``RQ = TP / (TP + FP/2 + FN/2)``. "All", "Things" and "Stuff" average the per-category
values over the categories of the group with ``TP + FP + FN > 0`` (their number is ``n``).

Deviations, all on inputs panopticapi does not expect: several crowd segments of one
category in one image are all used (panopticapi keeps only the last one; COCO has at most
one), and a group with ``n = 0`` scores NaN (panopticapi divides by zero). Categories with
nothing to count have NaN per-class scores (panopticapi writes 0.0; neither is averaged).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from knnvocab.evaluate._checks import check_int, check_label_map, fail

IntArray = npt.NDArray[np.int64]
VOID = 0
MATCH_IOU = 0.5  # a match needs IoU strictly above this
IGNORE_FRACTION = 0.5  # an unmatched prediction more than this on void + crowd is no FP


class Segment(NamedTuple):
    """What a segment id stands for: its category and, in ground truth, COCO ``iscrowd``."""

    category_id: int
    iscrowd: bool = False


@dataclass(frozen=True, eq=False)
class PanopticMap:
    """The panoptic segmentation of one image.

    Attributes:
        ids: (H, W) int64 segment id per pixel; 0 is void (unlabelled / not predicted).
        segments: segment id -> `Segment` (a ``(category_id, iscrowd)`` tuple is accepted),
            for exactly the non-zero ids that occur in ``ids`` (panopticapi's rule).
    """

    ids: IntArray
    segments: Mapping[int, Segment]

    def __post_init__(self) -> None:
        ids = check_label_map(self.ids, "PanopticMap.ids").astype(np.int64, copy=False)
        if not isinstance(self.segments, Mapping):
            raise fail("PanopticMap.segments", "a mapping id -> Segment", type(self.segments))
        segments = {
            check_int(k, "segment id", minimum=1): _as_segment(v) for k, v in self.segments.items()
        }
        in_map = {int(i) for i in np.unique(ids)} - {VOID}
        if in_map != set(segments):
            missing = sorted(in_map - set(segments))[:10]
            absent = sorted(set(segments) - in_map)[:10]
            raise fail(
                "PanopticMap.segments",
                "one entry per non-zero id in the map",
                f"ids without an entry {missing}, entries without pixels {absent}",
            )
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "segments", segments)

    @classmethod
    def from_masks(
        cls,
        masks: npt.NDArray[np.bool_],
        category_ids: npt.ArrayLike,
        crowd: npt.ArrayLike | None = None,
        ignore: npt.NDArray[np.bool_] | None = None,
    ) -> PanopticMap:
        """Paint (N, H, W) bool masks in order (later over earlier) as segments 1 … N.

        ``category_ids``: (N,) ints; ``crowd``: (N,) bool or None; ``ignore``: (H, W) bool
        pixels set to void. Masks left without a pixel are dropped.
        """
        if not (isinstance(masks, np.ndarray) and masks.ndim == 3 and masks.dtype == bool):
            raise fail("masks", "an (N, H, W) bool ndarray", getattr(masks, "shape", masks))
        n = masks.shape[0]
        cats = np.asarray(category_ids)
        flags = np.zeros(n, bool) if crowd is None else np.asarray(crowd, bool)
        if cats.shape != (n,) or flags.shape != (n,):
            raise fail("category_ids / crowd", f"shape ({n},)", (cats.shape, flags.shape))
        ids = np.zeros(masks.shape[1:], np.int64)
        for i, mask in enumerate(masks, start=1):
            ids[mask] = i
        if ignore is not None:
            if not (isinstance(ignore, np.ndarray) and ignore.shape == ids.shape):
                raise fail(
                    "ignore", f"a {ids.shape} bool ndarray", getattr(ignore, "shape", ignore)
                )
            ids[ignore.astype(bool)] = VOID
        kept = {int(i) for i in np.unique(ids)} - {VOID}
        segs = {i: Segment(int(cats[i - 1]), bool(flags[i - 1])) for i in sorted(kept)}
        return cls(ids, segs)


def _as_segment(value: object) -> Segment:
    if isinstance(value, tuple) and len(value) in (1, 2):
        cat = check_int(value[0], "segment category_id")
        crowd = value[1] if len(value) == 2 else False
        if isinstance(crowd, bool | np.bool_) or crowd in (0, 1):
            return Segment(cat, bool(crowd))
    raise fail("segment", "Segment(category_id, iscrowd) or an (int, bool) tuple", value)


@dataclass(frozen=True)
class PQScore:
    """PQ, SQ, RQ in [0, 1] averaged over ``n`` categories (NaN if ``n == 0``)."""

    pq: float
    sq: float
    rq: float
    n: int


@dataclass(frozen=True)
class ClassPQ:
    """One category's counts and scores (scores NaN when ``tp + fp + fn == 0``)."""

    pq: float
    sq: float
    rq: float
    tp: int
    fp: int
    fn: int
    iou_sum: float
    isthing: bool

    @property
    def counted(self) -> bool:
        """Whether this category enters the averages (``tp + fp + fn > 0``)."""
        return self.tp + self.fp + self.fn > 0


@dataclass(frozen=True)
class PanopticResult:
    """Averages for panopticapi's "All", "Things" and "Stuff" groups, and per category."""

    all: PQScore
    things: PQScore
    stuff: PQScore
    per_class: Mapping[int, ClassPQ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested dict in panopticapi's layout; NaN becomes None."""

        def num(x: float) -> float | None:
            return None if np.isnan(x) else float(x)

        groups = {"All": self.all, "Things": self.things, "Stuff": self.stuff}
        out: dict[str, Any] = {
            k: {"pq": num(g.pq), "sq": num(g.sq), "rq": num(g.rq), "n": g.n}
            for k, g in groups.items()
        }
        out["per_class"] = {
            str(cat): {"pq": num(c.pq), "sq": num(c.sq), "rq": num(c.rq), **_counts(c)}
            for cat, c in self.per_class.items()
        }
        return out


def _counts(c: ClassPQ) -> dict[str, int]:
    return {"tp": c.tp, "fp": c.fp, "fn": c.fn}


class _Overlaps(NamedTuple):
    """Pixel counts of one image pair; void is never a "segment" here."""

    inter: IntArray  # (G, P) pixels of gt segment g ∩ pred segment p
    gt_area: IntArray  # (G,)
    pred_area: IntArray  # (P,)
    pred_on_void: IntArray  # (P,) pixels of p on void ground truth
    gt_cat: IntArray  # (G,) category index
    gt_crowd: npt.NDArray[np.bool_]  # (G,)
    pred_cat: IntArray  # (P,)


class PanopticAccumulator:
    """Accumulates panopticapi's per-category TP / FP / FN / Σ IoU over images.

    Args:
        categories: category id -> isthing, for every category that may occur.
    """

    def __init__(self, categories: Mapping[int, bool]) -> None:
        if not categories:
            raise fail("categories", "at least one category id -> isthing", categories)
        self.categories = {
            check_int(k, "category id"): bool(v) for k, v in sorted(categories.items())
        }
        self._index = {cat: i for i, cat in enumerate(self.categories)}
        k = len(self.categories)
        self._iou_sum = np.zeros(k, np.float64)
        self._tp = np.zeros(k, np.int64)
        self._fp = np.zeros(k, np.int64)
        self._fn = np.zeros(k, np.int64)
        self.num_images = 0

    def update(self, pred: PanopticMap, gt: PanopticMap) -> None:
        """Add one image: its predicted and ground-truth `PanopticMap` (same H, W).

        Raises:
            ValueError: shapes differ, a category is not in ``categories``, or a predicted
                segment is marked crowd.
        """
        if not (isinstance(pred, PanopticMap) and isinstance(gt, PanopticMap)):
            raise fail("pred, gt", "PanopticMap", (type(pred).__name__, type(gt).__name__))
        if pred.ids.shape != gt.ids.shape:
            raise fail("pred.ids", f"the ground-truth shape {gt.ids.shape}", pred.ids.shape)
        if any(s.iscrowd for s in pred.segments.values()):
            raise fail("pred.segments", "no crowd segments in a prediction", "iscrowd=True")
        ov = self._overlaps(pred, gt)
        matched = self._match(ov)
        gt_hit, pred_hit = matched.any(axis=1), matched.any(axis=0)
        np.add.at(self._fn, ov.gt_cat[~gt_hit & ~ov.gt_crowd], 1)
        np.add.at(self._fp, ov.pred_cat[~pred_hit & ~self._ignored(ov)], 1)
        self.num_images += 1

    def _category_index(
        self, segments: Mapping[int, Segment], ids: IntArray, what: str
    ) -> IntArray:
        unknown = {s.category_id for s in segments.values()} - set(self._index)
        if unknown:
            raise fail(f"{what} category ids", f"ids among {list(self._index)}", sorted(unknown))
        return np.array([self._index[segments[int(i)].category_id] for i in ids], np.int64)

    def _overlaps(self, pred: PanopticMap, gt: PanopticMap) -> _Overlaps:
        g_ids, g_inv = np.unique(gt.ids, return_inverse=True)
        p_ids, p_inv = np.unique(pred.ids, return_inverse=True)
        flat = g_inv.reshape(-1) * p_ids.size + p_inv.reshape(-1)
        table = np.bincount(flat, minlength=g_ids.size * p_ids.size)
        table = table.reshape(g_ids.size, p_ids.size).astype(np.int64)
        g_real, p_real = g_ids != VOID, p_ids != VOID
        inter = table[np.ix_(g_real, p_real)]
        void_row = table[~g_real].sum(axis=0)[p_real]
        return _Overlaps(
            inter=inter,
            gt_area=inter.sum(axis=1) + table[np.ix_(g_real, ~p_real)].sum(axis=1),
            pred_area=inter.sum(axis=0) + void_row,
            pred_on_void=void_row,
            gt_cat=self._category_index(gt.segments, g_ids[g_real], "gt"),
            gt_crowd=np.array([gt.segments[int(i)].iscrowd for i in g_ids[g_real]], bool),
            pred_cat=self._category_index(pred.segments, p_ids[p_real], "pred"),
        )

    def _match(self, ov: _Overlaps) -> npt.NDArray[np.bool_]:
        """(G, P) bool: TP pairs; adds their counts and IoUs. At most one per row/column."""
        same = (ov.gt_cat[:, None] == ov.pred_cat[None, :]) & ~ov.gt_crowd[:, None]
        candidate = same & (ov.inter > 0)
        union = (ov.pred_area - ov.pred_on_void)[None, :] + ov.gt_area[:, None] - ov.inter
        iou = np.divide(ov.inter, union, out=np.zeros(ov.inter.shape), where=candidate)
        matched: npt.NDArray[np.bool_] = candidate & (iou > MATCH_IOU)
        rows, _ = np.nonzero(matched)
        np.add.at(self._tp, ov.gt_cat[rows], 1)
        np.add.at(self._iou_sum, ov.gt_cat[rows], iou[matched])
        return matched

    @staticmethod
    def _ignored(ov: _Overlaps) -> npt.NDArray[np.bool_]:
        """(P,) bool: predictions mostly on void + crowd of their own category."""
        own_crowd = ov.gt_crowd[:, None] & (ov.gt_cat[:, None] == ov.pred_cat[None, :])
        on_crowd = np.where(own_crowd, ov.inter, 0).sum(axis=0)
        ignored: npt.NDArray[np.bool_] = (
            ov.pred_on_void + on_crowd
        ) / ov.pred_area > IGNORE_FRACTION
        return ignored

    def merge(self, other: PanopticAccumulator) -> None:
        """Add ``other``'s counts to this accumulator in place; categories must be equal."""
        if not isinstance(other, PanopticAccumulator):
            raise fail("other", "a PanopticAccumulator", type(other).__name__)
        if other.categories != self.categories:
            raise fail("other.categories", self.categories, other.categories)
        self._iou_sum += other._iou_sum
        self._tp += other._tp
        self._fp += other._fp
        self._fn += other._fn
        self.num_images += other.num_images

    def result(self) -> PanopticResult:
        """PQ / SQ / RQ of everything accumulated so far (see the module docstring)."""
        per_class = {
            cat: _class_pq(self._iou_sum[i], self._tp[i], self._fp[i], self._fn[i], thing)
            for i, (cat, thing) in enumerate(self.categories.items())
        }
        return PanopticResult(
            all=_average(list(per_class.values())),
            things=_average([c for c in per_class.values() if c.isthing]),
            stuff=_average([c for c in per_class.values() if not c.isthing]),
            per_class=per_class,
        )


def _class_pq(iou: float, tp: int, fp: int, fn: int, isthing: bool) -> ClassPQ:
    tp, fp, fn, iou = int(tp), int(fp), int(fn), float(iou)
    nan = float("nan")
    denom = tp + 0.5 * fp + 0.5 * fn
    if denom == 0:
        return ClassPQ(nan, nan, nan, tp, fp, fn, iou, isthing)
    sq = iou / tp if tp else 0.0
    return ClassPQ(iou / denom, sq, tp / denom, tp, fp, fn, iou, isthing)


def _average(classes: list[ClassPQ]) -> PQScore:
    counted = [c for c in classes if c.counted]
    n = len(counted)
    if n == 0:
        return PQScore(float("nan"), float("nan"), float("nan"), 0)
    return PQScore(
        pq=sum(c.pq for c in counted) / n,
        sq=sum(c.sq for c in counted) / n,
        rq=sum(c.rq for c in counted) / n,
        n=n,
    )
