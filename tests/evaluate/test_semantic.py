"""SemanticConfusion against torchmetrics, hand-worked cases, and bad input."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from knnvocab.evaluate import SemanticConfusion, SemanticResult, semantic_scores

torch = pytest.importorskip("torch")
torchmetrics = pytest.importorskip("torchmetrics")

TOL = 1e-6
IGNORE = 255


def reference(pairs: list[tuple[np.ndarray, np.ndarray]], c: int) -> dict[str, Any]:
    """torchmetrics' view of the same images, accumulated the same way."""
    common: dict[str, Any] = {"task": "multiclass", "num_classes": c, "ignore_index": IGNORE}
    metrics = {
        "iou": torchmetrics.JaccardIndex(average="none", **common),
        "iou_macro": torchmetrics.JaccardIndex(average="macro", **common),
        "acc": torchmetrics.Accuracy(average="none", **common),
        "acc_micro": torchmetrics.Accuracy(average="micro", **common),
        "confmat": torchmetrics.ConfusionMatrix(**common),
    }
    for pred, gt in pairs:
        p, g = torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(gt.astype(np.int64))
        for m in metrics.values():
            m.update(p, g)
    return {k: m.compute().double().numpy() for k, m in metrics.items()}


def ours(pairs: list[tuple[np.ndarray, np.ndarray]], c: int) -> SemanticConfusion:
    acc = SemanticConfusion(c, ignore_index=IGNORE)
    for pred, gt in pairs:
        acc.update(pred, gt)
    return acc


def check_against_torchmetrics(pairs: list[tuple[np.ndarray, np.ndarray]], c: int) -> None:
    acc = ours(pairs, c)
    ref = reference(pairs, c)
    confmat = ref["confmat"]  # rows target, columns prediction, like ours
    np.testing.assert_array_equal(acc.confusion, confmat)
    gt_pixels = confmat.sum(axis=1)
    present = gt_pixels > 0
    in_union = gt_pixels + confmat.sum(axis=0) > 0

    dt2 = acc.result("detectron2")
    np.testing.assert_array_equal(dt2.present, present)
    # torchmetrics gives 0 where the union is empty; compare only where each convention counts
    np.testing.assert_allclose(dt2.per_class_iou[present], ref["iou"][present], atol=TOL)
    assert np.isnan(dt2.per_class_iou[~present]).all()
    assert dt2.miou == pytest.approx(ref["iou"][present].mean(), abs=TOL)

    mm = acc.result("mmseg")
    np.testing.assert_allclose(mm.per_class_iou[in_union], ref["iou"][in_union], atol=TOL)
    assert np.isnan(mm.per_class_iou[~in_union]).all()
    assert mm.miou == pytest.approx(ref["iou"][in_union].mean(), abs=TOL)
    # torchmetrics' macro Jaccard drops exactly the classes with an empty union: mmseg's rule
    assert mm.miou == pytest.approx(float(ref["iou_macro"]), abs=TOL)

    for res in (dt2, mm):
        np.testing.assert_allclose(res.per_class_accuracy[present], ref["acc"][present], atol=TOL)
        assert np.isnan(res.per_class_accuracy[~present]).all()
        assert res.mean_accuracy == pytest.approx(ref["acc"][present].mean(), abs=TOL)
        assert res.pixel_accuracy == pytest.approx(float(ref["acc_micro"]), abs=TOL)


def random_pair(rng: np.random.Generator, c: int) -> tuple[np.ndarray, np.ndarray]:
    """gt uses classes 0..c-3; class c-2 is only predicted; class c-1 never occurs."""
    h, w = rng.integers(20, 48, size=2)
    gt = rng.integers(0, c - 2, size=(h, w))
    pred = gt.copy()
    noisy = rng.random((h, w)) < 0.35
    pred[noisy] = rng.integers(0, c - 1, size=int(noisy.sum()))
    gt[rng.random((h, w)) < 0.1] = IGNORE
    return pred.astype(np.uint8), gt.astype(np.int32)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_maps_agree_with_torchmetrics(seed: int) -> None:
    rng = np.random.default_rng(seed)
    c = int(rng.integers(4, 12))
    pairs = [random_pair(rng, c) for _ in range(4)]
    check_against_torchmetrics(pairs, c)
    dt2, mm = ours(pairs, c).result(), ours(pairs, c).result("mmseg")
    assert mm.miou < dt2.miou  # the predicted-only class counts (IoU 0) for mmseg only


Band = Callable[[np.ndarray], np.ndarray]


def voc_pair(voc: dict[str, Any], boundary_band: Band) -> tuple[np.ndarray, np.ndarray]:
    """A real VOC annotation (void band added) vs a shifted, relabelled copy of itself."""
    label = voc["class_label"].astype(np.int64)
    gt = label.copy()
    gt[boundary_band(label)] = IGNORE
    pred = np.roll(label, (4, -6), axis=(0, 1))
    chair, table = 9, 11
    pred = np.where(pred == chair, table, np.where(pred == table, chair, pred))
    pred[:40, :60] = 8  # "cat": absent from this image's ground truth
    return pred, gt


def test_real_voc_annotation_agrees_with_torchmetrics(
    voc: dict[str, Any], boundary_band: Band
) -> None:
    pred, gt = voc_pair(voc, boundary_band)
    c = len(voc["class_names"])
    check_against_torchmetrics([(pred, gt)], c)
    res = ours([(pred, gt)], c).result()
    assert np.flatnonzero(res.present).tolist() == [0, 5, 9, 11, 15]
    assert math.isnan(res.per_class_iou[8])
    assert ours([(pred, gt)], c).result("mmseg").per_class_iou[8] == 0.0


def test_real_voc_against_itself_is_perfect(voc: dict[str, Any]) -> None:
    label = voc["class_label"]
    res = ours([(label, label)], 21).result()
    assert (res.miou, res.pixel_accuracy, res.mean_accuracy) == (1.0, 1.0, 1.0)


# Hand-worked cases. Columns are the x axis; each list is one image row.
GT_HALVES = np.array([[0, 0, 1, 1]] * 4)


def test_four_by_four_two_classes() -> None:
    pred = np.array([[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 1, 1], [0, 0, 1, 1]])
    acc = SemanticConfusion(2)
    acc.update(pred, GT_HALVES)
    # class 0: gt 8 px, predicted 10 px, 8 correct -> IoU 8/(8+10-8) = 0.8, recall 8/8
    # class 1: gt 8 px, predicted 6 px, 6 correct -> IoU 6/(8+6-6) = 0.75, recall 6/8
    np.testing.assert_array_equal(acc.confusion, [[8, 0], [2, 6]])
    for convention in ("detectron2", "mmseg"):
        res = acc.result(convention)
        np.testing.assert_allclose(res.per_class_iou, [0.8, 0.75])
        np.testing.assert_allclose(res.per_class_accuracy, [1.0, 0.75])
        assert res.miou == pytest.approx(0.775)
        assert res.pixel_accuracy == pytest.approx(14 / 16)
        assert res.mean_accuracy == pytest.approx(0.875)


def test_class_only_in_prediction_splits_the_conventions() -> None:
    pred = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 0, 1, 1], [2, 0, 1, 1]])
    acc = SemanticConfusion(4)  # class 3 occurs nowhere
    acc.update(pred, GT_HALVES)
    # class 0: gt 8, pred 6, tp 6 -> 6/8;  class 1: gt 8, pred 8, tp 8 -> 1
    # class 2: gt 0, pred 2, tp 0 -> union 2, IoU 0;  class 3: union 0
    dt2, mm = acc.result("detectron2"), acc.result("mmseg")
    np.testing.assert_array_equal(dt2.per_class_iou, [0.75, 1.0, np.nan, np.nan])
    np.testing.assert_array_equal(mm.per_class_iou, [0.75, 1.0, 0.0, np.nan])
    assert dt2.miou == pytest.approx((0.75 + 1.0) / 2)  # 0.875
    assert mm.miou == pytest.approx((0.75 + 1.0 + 0.0) / 3)  # 0.5833…
    for res in (dt2, mm):
        np.testing.assert_array_equal(res.present, [True, True, False, False])
        assert res.pixel_accuracy == pytest.approx(14 / 16)
        assert res.mean_accuracy == pytest.approx(0.875)


def test_all_pixels_ignored_gives_nan_without_warnings() -> None:
    acc = SemanticConfusion(3)
    acc.update(np.zeros((4, 4), np.int64), np.full((4, 4), IGNORE))
    for convention in ("detectron2", "mmseg"):
        res = acc.result(convention)
        assert math.isnan(res.miou) and math.isnan(res.pixel_accuracy)
        assert math.isnan(res.mean_accuracy)
        assert not res.present.any() and np.isnan(res.per_class_iou).all()
    assert acc.confusion.sum() == 0


def test_predictions_outside_the_classes_count_as_wrong() -> None:
    gt = np.zeros((4, 4), np.int64)
    pred = np.zeros((4, 4), np.int64)
    pred[0] = [255, 255, -1, 2]  # ignore value, negative, == C: all wrong, none dropped
    acc = SemanticConfusion(2)
    acc.update(pred, gt)
    np.testing.assert_array_equal(acc.void_predictions, [4, 0])
    np.testing.assert_array_equal(acc.confusion, [[12, 0], [0, 0]])
    res = acc.result()
    # class 0: gt 16, tp 12, predicted 12 -> IoU 12/16, recall 12/16; class 1 absent
    np.testing.assert_array_equal(res.per_class_iou, [0.75, np.nan])
    assert res.pixel_accuracy == 0.75


def test_ignore_index_is_only_a_ground_truth_value() -> None:
    acc = SemanticConfusion(2, ignore_index=-1)
    acc.update(np.array([[0, 1, 1]]), np.array([[0, -1, 0]]))
    # the middle pixel is ignored; the last one is gt 0 predicted 1
    np.testing.assert_array_equal(acc.confusion, [[1, 1], [0, 0]])


def test_merge_equals_accumulating_everything() -> None:
    rng = np.random.default_rng(7)
    pairs = [random_pair(rng, 6) for _ in range(5)]
    whole, left, right = ours(pairs, 6), ours(pairs[:2], 6), ours(pairs[2:], 6)
    left.merge(right)
    np.testing.assert_array_equal(left.confusion, whole.confusion)
    assert left.num_images == whole.num_images == 5
    assert whole.confusion.dtype == np.int64 and whole.confusion.shape == (6, 6)


def test_semantic_scores_accepts_a_plain_confusion_matrix() -> None:
    res = semantic_scores(np.array([[8, 0], [2, 6]]), "detectron2")
    assert res.miou == pytest.approx(0.775)


def test_to_dict_is_json_ready() -> None:
    acc = SemanticConfusion(3)
    acc.update(np.array([[0, 1]]), np.array([[0, 1]]))
    out = acc.result().to_dict(["sky", "road", "car"])
    assert out["mIoU"] == 1.0 and out["IoU"] == {"sky": 1.0, "road": 1.0, "car": None}


def test_result_arrays_are_read_only() -> None:
    acc = SemanticConfusion(2)
    acc.update(GT_HALVES, GT_HALVES)
    with pytest.raises(ValueError, match="read-only"):
        acc.result().per_class_iou[0] = 0.0


def test_library_imports_neither_torch_nor_matplotlib() -> None:
    code = (
        "import sys, knnvocab.evaluate; print(sorted({'torch', 'matplotlib'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 0}, r"num_classes: expected an int >= 1, got 0"),
        ({"num_classes": -3}, r"num_classes: expected an int >= 1, got -3"),
        ({"num_classes": 2.5}, r"num_classes: expected an int, got 2.5"),
        ({"num_classes": True}, r"num_classes: expected an int, got True"),
        ({"num_classes": 3, "ignore_index": 1}, r"ignore_index: expected a value outside"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SemanticConfusion(**kwargs)


@pytest.mark.parametrize(
    ("pred", "gt", "message"),
    [
        (np.zeros((4, 5), int), np.zeros((4, 4), int), r"pred: expected the ground-truth shape"),
        (np.zeros((4, 4), float), np.zeros((4, 4), int), r"pred: expected an \(H, W\) integer"),
        (np.zeros((1, 4, 4), int), np.zeros((1, 4, 4), int), r"pred: expected an \(H, W\)"),
        (np.zeros((4, 4), int), [[0, 1]], r"gt: expected an \(H, W\) integer ndarray, got list"),
        (np.zeros((2, 2), int), np.array([[0, 3], [7, 255]]), r"gt: expected labels in \[0, 3\)"),
    ],
)
def test_bad_update_arguments(pred: Any, gt: Any, message: str) -> None:
    acc = SemanticConfusion(3)
    with pytest.raises(ValueError, match=message):
        acc.update(pred, gt)
    assert acc.num_images == 0 and acc.confusion.sum() == 0


def test_bad_convention_and_merge() -> None:
    acc = SemanticConfusion(3)
    with pytest.raises(ValueError, match=r"convention: expected one of \('detectron2', 'mmseg'\)"):
        acc.result("cityscapes")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"other \(num_classes, ignore_index\): expected \(3, 255\)"
    ):
        acc.merge(SemanticConfusion(4))
    with pytest.raises(ValueError, match="expected a SemanticConfusion"):
        acc.merge("nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="class_names: expected 3 names, got 2"):
        acc.result().to_dict(["a", "b"])


def test_result_validates_its_shapes() -> None:
    with pytest.raises(ValueError, match="per_class_iou: expected shape"):
        SemanticResult(
            miou=0.0,
            pixel_accuracy=0.0,
            mean_accuracy=0.0,
            per_class_iou=np.zeros(3),
            per_class_accuracy=np.zeros(2),
            present=np.zeros(2, bool),
            convention="mmseg",
        )
