"""PanopticAccumulator against torchmetrics' PanopticQuality, hand-worked cases, bad input."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Collection
from typing import Any

import numpy as np
import pytest

from knnvocab.evaluate import PanopticAccumulator, PanopticMap, PanopticResult, Segment

torch = pytest.importorskip("torch")
tm_detection = pytest.importorskip("torchmetrics.detection")

TOL = 1e-6
THINGS = {1: True, 2: True, 3: True, 4: True}
STUFF = {10: False, 11: False, 12: False}
CATEGORIES = THINGS | STUFF
TM_VOID = 255  # a category torchmetrics does not know: its "void"


def panoptic_map(
    ids: np.ndarray, category: dict[int, int], crowd: Collection[int] = ()
) -> PanopticMap:
    """Segments for exactly the ids present in ``ids`` (0 = void)."""
    present = [int(i) for i in np.unique(ids) if i != 0]
    return PanopticMap(ids, {i: Segment(category[i], i in crowd) for i in present})


def to_torchmetrics(pm: PanopticMap) -> Any:
    """(H, W, 2) int64 tensor of (category_id, instance_id); void -> an unknown category."""
    lookup = {0: TM_VOID, **{i: s.category_id for i, s in pm.segments.items()}}
    cats = np.vectorize(lookup.__getitem__, otypes=[np.int64])(pm.ids)
    return torch.from_numpy(np.stack([cats, pm.ids], axis=-1))


def check_against_torchmetrics(
    pairs: list[tuple[PanopticMap, PanopticMap]], categories: dict[int, bool] = CATEGORIES
) -> PanopticResult:
    things = [k for k, v in categories.items() if v]
    stuffs = [k for k, v in categories.items() if not v]
    ref_avg = tm_detection.PanopticQuality(things=things, stuffs=stuffs, return_sq_and_rq=True)
    ref_cls = tm_detection.PanopticQuality(
        things=things, stuffs=stuffs, return_sq_and_rq=True, return_per_class=True
    )
    acc = PanopticAccumulator(categories)
    for pred, gt in pairs:
        acc.update(pred, gt)
        p, g = to_torchmetrics(pred)[None], to_torchmetrics(gt)[None]
        ref_avg.update(p, g)
        ref_cls.update(p, g)
    res = acc.result()
    # the raw counts first: the strongest check
    for cat, idx in ref_cls.cat_id_to_continuous_id.items():
        c = res.per_class[cat]
        assert (c.tp, c.fp, c.fn) == (
            int(ref_cls.true_positives[idx]),
            int(ref_cls.false_positives[idx]),
            int(ref_cls.false_negatives[idx]),
        ), cat
        assert c.iou_sum == pytest.approx(float(ref_cls.iou_sum[idx]), abs=TOL)
    np.testing.assert_allclose(
        [res.all.pq, res.all.sq, res.all.rq], ref_avg.compute().numpy(), atol=TOL
    )
    check_groups_and_classes(res, ref_cls, categories)
    return res


def check_groups_and_classes(res: PanopticResult, ref: Any, categories: dict[int, bool]) -> None:
    per_class = ref.compute().numpy()  # (K, 3): pq, sq, rq; things then stuff, sorted
    order = sorted(ref.cat_id_to_continuous_id, key=ref.cat_id_to_continuous_id.get)
    counted = np.array([res.per_class[c].counted for c in order])
    assert counted.tolist() == [
        bool(ref.true_positives[i] + ref.false_positives[i] + ref.false_negatives[i])
        for i in range(len(order))
    ]
    ours = np.array(
        [[res.per_class[c].pq, res.per_class[c].sq, res.per_class[c].rq] for c in order]
    )
    np.testing.assert_allclose(ours[counted], per_class[counted], atol=TOL)
    assert np.isnan(ours[~counted]).all()  # torchmetrics writes 0 there, panopticapi 0.0
    isthing = np.array([categories[c] for c in order])
    for group, mask in ((res.things, isthing), (res.stuff, ~isthing)):
        chosen = per_class[mask & counted]
        assert group.n == len(chosen)
        np.testing.assert_allclose([group.pq, group.sq, group.rq], chosen.mean(axis=0), atol=TOL)


def random_pair(rng: np.random.Generator) -> tuple[PanopticMap, PanopticMap]:
    """Stuff bands + thing boxes; the prediction jitters, drops, relabels and invents boxes.

    The prediction covers every pixel (torchmetrics, unlike panopticapi, drops ground truth
    that is mostly unpredicted and leaves it out of the union), and each stuff category is
    one segment (torchmetrics merges all segments of a stuff category).
    """
    h, w = (int(v) for v in rng.integers(40, 72, size=2))
    gt, pred = np.zeros((h, w), np.int64), np.zeros((h, w), np.int64)
    cat: dict[int, int] = {}
    rows = np.sort(rng.choice(np.arange(5, h - 5), size=2, replace=False))
    for k, (stuff, edge) in enumerate(zip(STUFF, [0, *rows.tolist()], strict=True)):
        cat[100 + k], cat[200 + k] = stuff, stuff
        jitter = int(rng.integers(-3, 4)) if edge else 0
        gt[edge:], pred[edge + jitter :] = 100 + k, 200 + k
    for k in range(int(rng.integers(3, 8))):
        y, x = int(rng.integers(0, h - 8)), int(rng.integers(0, w - 8))
        bh, bw = (int(v) for v in rng.integers(4, 20, size=2))
        cat[300 + k] = cat[400 + k] = int(rng.choice(list(THINGS)))
        gt[y : y + bh, x : x + bw] = 300 + k
        if rng.random() < 0.15:
            continue  # missed: a false negative
        if rng.random() < 0.2:
            cat[400 + k] = int(rng.choice(list(THINGS)))  # maybe the wrong class
        dy, dx, dh, dw = (int(v) for v in rng.integers(-3, 4, size=4))
        pred[max(0, y + dy) : y + dy + bh + dh, max(0, x + dx) : x + dx + bw + dw] = 400 + k
    spurious = 500 + int(rng.integers(0, 3))
    cat[spurious] = int(rng.choice(list(THINGS)))
    pred[h - 6 :, w - 7 :] = spurious
    gt[rng.random((h, w)) < 0.05] = 0  # scattered void
    gt[: int(rng.integers(0, 6)), :] = 0  # an unlabelled top band
    return panoptic_map(pred, cat), panoptic_map(gt, cat)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_random_panoptic_maps_agree_with_torchmetrics(seed: int) -> None:
    rng = np.random.default_rng(seed)
    res = check_against_torchmetrics([random_pair(rng) for _ in range(3)])
    totals = [sum(getattr(c, k) for c in res.per_class.values()) for k in ("tp", "fp", "fn")]
    assert all(t > 0 for t in totals), totals  # the data exercises every kind of count


def panopticapi_port(pairs: list[tuple[PanopticMap, PanopticMap]]) -> dict[int, list[float]]:
    """panopticapi's ``pq_compute_single_core`` loop, ported line by line (PNG reading aside).

    Returns category id -> [iou, tp, fp, fn], as its ``PQStat``.
    """
    offset, void = 256 * 256 * 256, 0
    stat: dict[int, list[float]] = defaultdict(lambda: [0.0, 0, 0, 0])
    for pred, gt in pairs:
        ids, counts = np.unique(gt.ids, return_counts=True)
        gt_area = dict(zip(ids.tolist(), counts.tolist(), strict=True))
        gt_segms = {
            i: {"category_id": s.category_id, "iscrowd": int(s.iscrowd), "area": gt_area[i]}
            for i, s in gt.segments.items()
        }
        pred_segms: dict[int, dict[str, int]] = {
            i: {"category_id": s.category_id} for i, s in pred.segments.items()
        }
        for label, label_cnt in zip(*np.unique(pred.ids, return_counts=True), strict=True):
            if label != void:
                pred_segms[int(label)]["area"] = int(label_cnt)
        pan_gt_pred = gt.ids.astype(np.uint64) * offset + pred.ids.astype(np.uint64)
        gt_pred_map = {}
        for label, intersection in zip(*np.unique(pan_gt_pred, return_counts=True), strict=True):
            gt_pred_map[(int(label // offset), int(label % offset))] = int(intersection)
        gt_matched, pred_matched = set(), set()
        for (gt_label, pred_label), intersection in gt_pred_map.items():
            if gt_label not in gt_segms or pred_label not in pred_segms:
                continue
            if gt_segms[gt_label]["iscrowd"] == 1:
                continue
            if gt_segms[gt_label]["category_id"] != pred_segms[pred_label]["category_id"]:
                continue
            union = (
                pred_segms[pred_label]["area"]
                + gt_segms[gt_label]["area"]
                - intersection
                - gt_pred_map.get((void, pred_label), 0)
            )
            iou = intersection / union
            if iou > 0.5:
                stat[gt_segms[gt_label]["category_id"]][0] += iou
                stat[gt_segms[gt_label]["category_id"]][1] += 1
                gt_matched.add(gt_label)
                pred_matched.add(pred_label)
        crowd_labels_dict = {}
        for gt_label, gt_info in gt_segms.items():
            if gt_label in gt_matched:
                continue
            if gt_info["iscrowd"] == 1:
                crowd_labels_dict[gt_info["category_id"]] = gt_label
                continue
            stat[gt_info["category_id"]][3] += 1
        for pred_label, pred_info in pred_segms.items():
            if pred_label in pred_matched:
                continue
            intersection = gt_pred_map.get((void, pred_label), 0)
            if pred_info["category_id"] in crowd_labels_dict:
                crowd = crowd_labels_dict[pred_info["category_id"]]
                intersection += gt_pred_map.get((crowd, pred_label), 0)
            if intersection / pred_info["area"] > 0.5:
                continue
            stat[pred_info["category_id"]][2] += 1
    return stat


def with_crowd_and_holes(rng: np.random.Generator) -> tuple[PanopticMap, PanopticMap]:
    """`random_pair`, plus what torchmetrics cannot score: crowd ground truth (at most one
    segment per category, as in COCO), unpredicted pixels, and a stuff category predicted
    as two segments."""
    pred, gt = random_pair(rng)
    crowd: dict[int, int] = {}  # category -> its crowd segment
    for i, seg in gt.segments.items():
        if CATEGORIES[seg.category_id] and seg.category_id not in crowd and rng.random() < 0.5:
            crowd[seg.category_id] = i
    ids = pred.ids.copy()
    h, w = ids.shape
    y, x = int(rng.integers(0, h - 10)), int(rng.integers(0, w - 10))
    ids[y : y + 10, x : x + int(rng.integers(4, 10))] = 0
    first_stuff = min(i for i, s in pred.segments.items() if not CATEGORIES[s.category_id])
    ids[:, w // 2 :][ids[:, w // 2 :] == first_stuff] = 999
    cat = {i: s.category_id for i, s in pred.segments.items()}
    cat[999] = cat[first_stuff]
    gt_cat = {i: s.category_id for i, s in gt.segments.items()}
    return panoptic_map(ids, cat), panoptic_map(gt.ids, gt_cat, crowd=set(crowd.values()))


@pytest.mark.parametrize("seed", range(6))
def test_crowd_and_void_agree_with_a_port_of_panopticapi(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    pairs = [with_crowd_and_holes(rng) for _ in range(3)]
    assert any(s.iscrowd for _, gt in pairs for s in gt.segments.values())
    res = accumulate(*pairs)
    stat = panopticapi_port(pairs)
    for cat, c in res.per_class.items():
        iou, tp, fp, fn = stat.get(cat, [0.0, 0, 0, 0])
        assert (c.tp, c.fp, c.fn) == (tp, fp, fn), cat
        assert c.iou_sum == pytest.approx(iou, abs=1e-12)
    # panopticapi's pq_average over the counted categories of each group
    for group, isthing in ((res.all, None), (res.things, True), (res.stuff, False)):
        scores = []
        for cat, thing in CATEGORIES.items():
            iou, tp, fp, fn = stat.get(cat, [0.0, 0, 0, 0])
            if (isthing is None or thing == isthing) and tp + fp + fn:
                denom = tp + 0.5 * fp + 0.5 * fn
                scores.append((iou / denom, iou / tp if tp else 0.0, tp / denom))
        assert group.n == len(scores)
        np.testing.assert_allclose([group.pq, group.sq, group.rq], np.mean(scores, 0), atol=1e-12)


VOC_BACKGROUND = 0


def voc_pair(
    voc: dict[str, Any], band: Callable[[np.ndarray], np.ndarray]
) -> tuple[PanopticMap, PanopticMap]:
    """Real VOC instances (void band at every edge) vs shifted, relabelled, dropped copies."""
    masks, labels = voc["masks"], voc["labels"].astype(np.int64)
    background = ~masks.any(axis=0)
    gt = PanopticMap.from_masks(np.concatenate([background[None], masks]), [0, *labels])
    gt = PanopticMap.from_masks(
        np.concatenate([background[None], masks]), [0, *labels], ignore=band(gt.ids)
    )
    rng = np.random.default_rng(0)
    shifted = [np.roll(m, tuple(rng.integers(-6, 7, size=2)), axis=(0, 1)) for m in masks]
    keep = [i for i in range(len(masks)) if i != 3]  # one chair is missed
    pred_labels = labels.copy()
    pred_labels[12] = 18  # a dining table called a sofa
    pred_masks = [np.ones_like(background)] + [shifted[i] for i in keep]
    pred = PanopticMap.from_masks(np.stack(pred_masks), [0, *pred_labels[keep]])
    return pred, gt


def test_real_voc_instances_agree_with_torchmetrics(
    voc: dict[str, Any], boundary_band: Callable[[np.ndarray], np.ndarray]
) -> None:
    pred, gt = voc_pair(voc, boundary_band)
    voc_categories = {0: False, **{c: True for c in range(1, 21)}}  # background is stuff
    res = check_against_torchmetrics([(pred, gt)], voc_categories)
    assert res.per_class[18].fp == 1 and res.per_class[11].fn >= 1
    assert res.things.n == 5 and res.stuff.n == 1  # bottle, chair, table, person, sofa


# Hand-worked cases: 1-row images unless said otherwise; ids listed left to right.
def row(ids: list[int]) -> np.ndarray:
    return np.array([ids], np.int64)


def accumulate(*pairs: tuple[PanopticMap, PanopticMap]) -> PanopticResult:
    acc = PanopticAccumulator(CATEGORIES)
    for pred, gt in pairs:
        acc.update(pred, gt)
    return acc.result()


def test_iou_exactly_one_half_is_not_a_match() -> None:
    gt = panoptic_map(row([1, 1, 2, 2]), {1: 1, 2: 10})
    pred = panoptic_map(row([1, 1, 1, 1]), {1: 1})
    # thing 1: |g ∩ p| = 2, union = 4 + 2 - 2 = 4 -> IoU 0.5, not > 0.5:
    # gt 1 is a FN, pred 1 a FP (nothing on void); stuff 10 is a FN
    res = accumulate((pred, gt))
    assert (res.per_class[1].tp, res.per_class[1].fp, res.per_class[1].fn) == (0, 1, 1)
    assert (res.per_class[10].tp, res.per_class[10].fn) == (0, 1)
    assert (res.all.pq, res.all.sq, res.all.rq, res.all.n) == (0.0, 0.0, 0.0, 2)


def test_iou_just_above_one_half_matches() -> None:
    gt = panoptic_map(row([1, 1, 1, 2, 2]), {1: 1, 2: 10})
    pred = panoptic_map(row([1, 1, 1, 1, 1]), {1: 1})
    # thing 1: 3 / (5 + 3 - 3) = 0.6 -> TP with IoU 0.6; PQ = 0.6 / (1 + 0 + 0)
    c = accumulate((pred, gt)).per_class[1]
    assert (c.tp, c.fp, c.fn) == (1, 0, 0)
    assert (c.pq, c.sq, c.rq) == pytest.approx((0.6, 0.6, 1.0))


def test_prediction_on_void_is_left_out_of_the_union() -> None:
    gt = panoptic_map(row([1, 1, 0, 0, 0, 2]), {1: 1, 2: 10})
    pred = panoptic_map(row([1, 1, 1, 1, 1, 2]), {1: 1, 2: 10})
    # thing 1: union = |p| 5 + |g| 2 - 2 - 3 on void = 2 -> IoU 1.0 (naively 2/5: no match)
    res = accumulate((pred, gt))
    assert res.per_class[1].tp == 1 and res.per_class[1].iou_sum == 1.0
    assert (res.all.pq, res.all.n) == (1.0, 2)


def test_unpredicted_pixels_lower_the_iou() -> None:
    gt = panoptic_map(row([1, 1, 1, 1]), {1: 1})
    pred = panoptic_map(row([1, 1, 0, 0]), {1: 1})
    # union = 2 + 4 - 2 - 0 = 4 -> IoU 0.5: no match, so one FN and one FP
    c = accumulate((pred, gt)).per_class[1]
    assert (c.tp, c.fp, c.fn) == (0, 1, 1)


def test_crowd_absorbs_predictions_of_its_own_category_only() -> None:
    gt = panoptic_map(row([1, 1, 1, 1, 2, 2, 2, 2]), {1: 1, 2: 10}, crowd={1})
    pred = panoptic_map(row([1, 1, 1, 3, 2, 2, 2, 2]), {1: 1, 3: 2, 2: 10})
    # pred 1 (thing 1): crowd never matches; 3/3 of it on crowd of thing 1 > 0.5 -> ignored
    # pred 3 (thing 2): on thing 1's crowd, which does not absorb it -> FP of thing 2
    # the unmatched crowd is no FN; stuff 10 matches with IoU 1
    res = accumulate((pred, gt))
    assert not res.per_class[1].counted and math.isnan(res.per_class[1].pq)
    assert (res.per_class[2].fp, res.per_class[2].pq) == (1, 0.0)
    assert res.per_class[10].pq == 1.0
    assert (res.all.pq, res.all.n) == (0.5, 2)  # (0 + 1) / 2
    assert (res.things.pq, res.things.n, res.stuff.pq, res.stuff.n) == (0.0, 1, 1.0, 1)


def test_half_on_crowd_is_still_a_false_positive() -> None:
    gt = panoptic_map(row([1, 1, 2, 2]), {1: 1, 2: 10}, crowd={1})
    pred = panoptic_map(row([1, 1, 1, 1]), {1: 1})
    # 2 of 4 pixels on crowd + void: 0.5 is not > 0.5 -> FP
    assert accumulate((pred, gt)).per_class[1].fp == 1


def test_void_and_crowd_add_up_to_absorb() -> None:
    gt = panoptic_map(row([1, 0, 2, 2]), {1: 1, 2: 10}, crowd={1})
    pred = panoptic_map(row([1, 1, 1, 2]), {1: 1, 2: 10})
    # pred 1: 1 px on crowd + 1 px on void = 2 of 3 > 0.5 -> ignored
    assert accumulate((pred, gt)).per_class[1].fp == 0


def test_things_and_stuff_averages() -> None:
    gt_ids = np.array([[1, 1, 2, 2], [3, 3, 3, 3]])
    pred_ids = np.array([[1, 1, 1, 2], [3, 3, 3, 3]])
    gt = panoptic_map(gt_ids, {1: 1, 2: 2, 3: 10})
    pred = panoptic_map(pred_ids, {1: 1, 2: 2, 3: 10})
    # thing 1: 2 / (3 + 2 - 2) = 2/3 -> TP;  thing 2: 1 / (1 + 2 - 1) = 0.5 -> FN + FP
    # stuff 10: IoU 1 -> TP;  things 3, 4 and stuff 11, 12: nothing -> not counted
    res = accumulate((pred, gt))
    assert (res.per_class[2].tp, res.per_class[2].fp, res.per_class[2].fn) == (0, 1, 1)
    assert (res.things.pq, res.things.sq, res.things.rq) == pytest.approx((1 / 3, 1 / 3, 0.5))
    assert (res.stuff.pq, res.stuff.sq, res.stuff.rq) == (1.0, 1.0, 1.0)
    assert (res.all.pq, res.all.sq, res.all.rq) == pytest.approx((5 / 9, 5 / 9, 2 / 3))
    assert (res.things.n, res.stuff.n, res.all.n) == (2, 1, 3)
    out = res.to_dict()
    assert out["Things"]["n"] == 2 and out["per_class"]["3"]["pq"] is None


def test_nothing_counted_gives_nan() -> None:
    empty = PanopticMap(np.zeros((2, 2), np.int64), {})
    res = accumulate((empty, empty))
    assert math.isnan(res.all.pq) and res.all.n == 0 and res.to_dict()["All"]["pq"] is None


def test_merge_equals_accumulating_everything() -> None:
    rng = np.random.default_rng(11)
    pairs = [random_pair(rng) for _ in range(4)]
    left, right = PanopticAccumulator(CATEGORIES), PanopticAccumulator(CATEGORIES)
    for i, (pred, gt) in enumerate(pairs):
        (left if i < 2 else right).update(pred, gt)
    left.merge(right)
    merged, whole = left.result(), accumulate(*pairs)
    for cat, c in whole.per_class.items():
        m = merged.per_class[cat]
        assert (m.tp, m.fp, m.fn) == (c.tp, c.fp, c.fn)
        assert m.iou_sum == pytest.approx(c.iou_sum, abs=1e-12)
    assert merged.all.pq == pytest.approx(whole.all.pq, abs=1e-12) and left.num_images == 4


def test_from_masks_paints_in_order_and_drops_hidden_masks() -> None:
    masks = np.zeros((3, 2, 3), bool)
    masks[0, :, :2] = True
    masks[1, :, 1:] = True  # paints over mask 0's second column
    masks[2, 0, 0] = True  # then hidden by the ignore pixel below
    ignore = np.zeros((2, 3), bool)
    ignore[0, 0] = True
    pm = PanopticMap.from_masks(masks, [1, 2, 3], crowd=[False, True, False], ignore=ignore)
    np.testing.assert_array_equal(pm.ids, [[0, 2, 2], [1, 2, 2]])
    assert pm.segments == {1: Segment(1, False), 2: Segment(2, True)}


def test_segments_may_be_plain_tuples() -> None:
    pm = PanopticMap(row([0, 7, 7]), {7: (10, 0)})  # type: ignore[dict-item]
    assert pm.segments[7] == Segment(10, False) and pm.ids.dtype == np.int64


@pytest.mark.parametrize(
    ("ids", "segments", "message"),
    [
        (row([0, 1, 2]), {1: Segment(1)}, r"ids without an entry \[2\]"),
        (row([0, 1]), {1: Segment(1), 5: Segment(1)}, r"entries without pixels \[5\]"),
        (row([0, 1]), {0: Segment(1), 1: Segment(1)}, r"segment id: expected an int >= 1, got 0"),
        (np.zeros((2, 2)), {}, r"PanopticMap.ids: expected an \(H, W\) integer ndarray"),
        (row([0, 1]), {1: "car"}, r"segment: expected Segment\(category_id, iscrowd\)"),
        (row([0, 1]), [1], r"PanopticMap.segments: expected a mapping"),
    ],
)
def test_bad_panoptic_maps(ids: Any, segments: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PanopticMap(ids, segments)


def test_bad_updates() -> None:
    acc = PanopticAccumulator(CATEGORIES)
    good = panoptic_map(row([1, 1]), {1: 1})
    with pytest.raises(ValueError, match=r"pred.ids: expected the ground-truth shape \(1, 2\)"):
        acc.update(panoptic_map(row([1, 1, 1]), {1: 1}), good)
    with pytest.raises(ValueError, match=r"pred category ids: expected ids among .*, got \[99\]"):
        acc.update(panoptic_map(row([1, 1]), {1: 99}), good)
    with pytest.raises(ValueError, match=r"gt category ids: expected ids among .*, got \[99\]"):
        acc.update(good, panoptic_map(row([1, 1]), {1: 99}))
    with pytest.raises(ValueError, match=r"pred\.segments: expected no crowd segments"):
        acc.update(panoptic_map(row([1, 1]), {1: 1}, crowd={1}), good)
    with pytest.raises(ValueError, match="pred, gt: expected PanopticMap"):
        acc.update(row([1, 1]), good)  # type: ignore[arg-type]
    assert acc.num_images == 0 and not any(c.counted for c in acc.result().per_class.values())


def test_bad_accumulator_arguments() -> None:
    with pytest.raises(ValueError, match="categories: expected at least one category"):
        PanopticAccumulator({})
    with pytest.raises(ValueError, match="category id: expected an int, got '1'"):
        PanopticAccumulator({"1": True})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"other\.categories: expected"):
        PanopticAccumulator(THINGS).merge(PanopticAccumulator(STUFF))
