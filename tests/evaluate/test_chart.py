"""iou_bar_chart writes a real PNG and checks its class names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knnvocab.evaluate import SemanticConfusion, iou_bar_chart

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

NAMES = ["background", "road", "car", "person"]


def confusion(gt_value: int = 0) -> SemanticConfusion:
    acc = SemanticConfusion(len(NAMES))
    gt = np.full((8, 8), gt_value)
    gt[:, 4:] = 2 if gt_value == 0 else gt_value
    pred = np.zeros((8, 8), np.int64)
    pred[:, 5:] = 2
    acc.update(pred, gt)
    return acc


def test_writes_a_png(tmp_path: Path) -> None:
    result = confusion().result()
    out = iou_bar_chart(result, NAMES, tmp_path / "iou.png", title="voc val")
    assert out == tmp_path / "iou.png"
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width >= 600 and image.height == 450


def test_chart_of_nothing_counted_is_still_written(tmp_path: Path) -> None:
    result = confusion(gt_value=255).result()
    assert np.isnan(result.per_class_iou).all()
    out = iou_bar_chart(result, NAMES, str(tmp_path / "empty.png"))
    assert out.stat().st_size > 0


def test_many_classes_keep_a_bounded_width(tmp_path: Path) -> None:
    acc = SemanticConfusion(200, ignore_index=65535)
    labels = np.arange(200).reshape(10, 20)
    acc.update(labels, labels)
    out = iou_bar_chart(acc.result("mmseg"), [f"c{i}" for i in range(200)], tmp_path / "w.png")
    with Image.open(out) as image:
        assert image.width <= 6000


def test_class_names_must_match(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="class_names: expected 4 names, got 3"):
        iou_bar_chart(confusion().result(), NAMES[:3], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
