"""Readers agree with each other when they read the same underlying labels.

labelme-examples ships the same 3 photos as labelme JSON, as labelme2voc output and as
labelme2coco output; the synthetic datasets are all written from the same 4 sources.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knnvocab.datasets import DatasetReader, open_dataset
from knnvocab.types import LabelledImage

from .builders import ADE847_STEP, iou

BACKGROUND = {"_background_", "background"}


def by_key(reader: DatasetReader) -> dict[str, LabelledImage]:
    """Samples by the stem of their key (COCO keys carry their JPEGImages/ folder)."""
    return {ref.key.rsplit("/", 1)[-1]: reader.load(ref) for ref in reader.samples()}


def named(reader: DatasetReader, sample: LabelledImage) -> list[tuple[str, np.ndarray]]:
    """(class name, mask) of every non-crowd, non-background instance."""
    inst = sample.instances
    return [
        (reader.class_names[c], m)
        for m, c, crowd in zip(inst.masks, inst.class_ids, inst.crowd, strict=True)
        if not crowd and reader.class_names[c] not in BACKGROUND
    ]


def best_ious(
    reference: list[tuple[str, np.ndarray]], other: list[tuple[str, np.ndarray]]
) -> list[float]:
    """For each instance of ``other``, its best IoU with a same-class ``reference`` one."""
    return [max((iou(m, r) for n, r in reference if n == name), default=0.0) for name, m in other]


@pytest.fixture(scope="module")
def three_readers(labelme_voc: Path, coco_examples: Path, examples: Path) -> list[DatasetReader]:
    labelme_dir = examples / "instance_segmentation" / "data_annotated"
    return [
        open_dataset("voc", labelme_voc),
        open_dataset("coco", coco_examples),
        open_dataset("labelme", labelme_dir),
    ]


def test_voc_coco_and_labelme_exports_agree(three_readers: list[DatasetReader]) -> None:
    voc, coco, labelme = three_readers
    voc_samples, coco_samples, labelme_samples = (by_key(r) for r in three_readers)
    assert voc_samples.keys() == coco_samples.keys() == labelme_samples.keys()
    worst = 1.0
    for key, voc_sample in voc_samples.items():
        reference = named(voc, voc_sample)
        for reader, sample in ((coco, coco_samples[key]), (labelme, labelme_samples[key])):
            # the exporters re-encoded the JPEG: same photo, not the same bytes
            assert sample.image.shape == voc_sample.image.shape
            pixels = sample.image.ravel(), voc_sample.image.ravel()
            assert np.corrcoef(*pixels)[0, 1] > 0.95
            instances = named(reader, sample)
            assert sorted(n for n, _ in instances) == sorted(n for n, _ in reference), key
            worst = min(worst, *best_ious(reference, instances))
    assert worst > 0.9


def test_labelme_reproduces_labelme2voc_exactly(three_readers: list[DatasetReader]) -> None:
    voc, _, labelme = three_readers
    for key, voc_sample in by_key(voc).items():
        ious = best_ious(named(voc, voc_sample), named(labelme, by_key(labelme)[key]))
        assert min(ious) == 1.0, key


@pytest.fixture(scope="module")
def semantic_maps(
    voc_root: Path,
    index_masks_root: Path,
    ade150_root: Path,
    ade847_root: Path,
    panoptic_root: Path,
) -> dict[str, dict[str, np.ndarray]]:
    """Per format, per sample: (H, W) VOC class index per pixel, -1 = ignore / unlabelled."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, fmt, root in (
        ("voc", "voc", voc_root),
        ("index-masks", "index-masks", index_masks_root),
        ("ade20k-150", "ade20k-150", ade150_root),
        ("ade20k-847", "ade20k-847", ade847_root),
        ("coco-panoptic", "coco-panoptic", panoptic_root),
    ):
        samples = by_key(open_dataset(fmt, root))
        out[name] = {k: s.instances.semantic_map() for k, s in samples.items()}
    for key, labels in out["ade20k-847"].items():
        out["ade20k-847"][key] = np.where(labels >= 0, labels // ADE847_STEP, -1)
    return out


@pytest.mark.parametrize("fmt", ["index-masks", "ade20k-150", "ade20k-847"])
def test_semantic_formats_agree_with_voc(
    semantic_maps: dict[str, dict[str, np.ndarray]], fmt: str
) -> None:
    for key, labels in semantic_maps[fmt].items():
        np.testing.assert_array_equal(labels, semantic_maps["voc"][key])


def test_panoptic_segments_match_voc_objects(
    voc_root: Path, panoptic_root: Path, semantic_maps: dict[str, dict[str, np.ndarray]]
) -> None:
    voc = open_dataset("voc", voc_root)
    panoptic = open_dataset("coco-panoptic", panoptic_root)
    voc_samples, panoptic_samples = by_key(voc), by_key(panoptic)
    for key, sample in panoptic_samples.items():
        ious = best_ious(named(voc, voc_samples[key]), named(panoptic, sample))
        assert ious and min(ious) == 1.0
        # panoptic semantics drop the crowd segment; everything else is VOC's labelling
        voc_map, panoptic_map = semantic_maps["voc"][key], semantic_maps["coco-panoptic"][key]
        crowd = sample.instances.masks[sample.instances.crowd].any(axis=0)
        np.testing.assert_array_equal(panoptic_map[~crowd], voc_map[~crowd])
