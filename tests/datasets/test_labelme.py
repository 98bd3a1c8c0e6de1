"""labelme reader: the real example annotations of labelme-examples."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from knnvocab.datasets import open_dataset
from knnvocab.datasets.labelme import LabelmeReader
from knnvocab.errors import DatasetError, ImageError

from .builders import check_message, edit_json, read_png, truncate


@pytest.fixture
def labelme_root(examples: Path, tmp_path: Path) -> Path:
    """instance_segmentation/data_annotated with its labels.txt inside the root."""
    root = tmp_path / "labelme"
    shutil.copytree(examples / "instance_segmentation" / "data_annotated", root)
    shutil.copy(examples / "instance_segmentation" / "labels.txt", root / "labels.txt")
    return root


def test_instance_examples_with_a_labels_txt(labelme_root: Path, labelme_voc: Path) -> None:
    reader = open_dataset("labelme", labelme_root, class_names="labels.txt")
    assert isinstance(reader, LabelmeReader)
    assert len(reader.class_names) == 21  # __ignore__ is not a class
    assert reader.class_names[0] == "_background_"
    refs = reader.samples()
    assert [r.key for r in refs] == ["2011_000003", "2011_000006", "2011_000025"]
    assert [f.name for f in refs[0].files] == ["2011_000003.jpg", "2011_000003.json"]
    loaded = [reader.load(ref) for ref in refs]
    assert loaded[0].instances.keys == ("shape0", "group0-person", "shape3")
    assert loaded[1].instances.keys[-1] == "group0-sofa"  # 4 polygons, one instance
    assert [len(s.instances) for s in loaded] == [3, 6, 3]
    assert [int(s.instances.ignore.sum()) for s in loaded] == [9460, 909, 0]
    # the painter's order reproduces labelme2voc's own object maps pixel for pixel
    for ref, sample in zip(refs, loaded, strict=True):
        objects = np.load(labelme_voc / "SegmentationObject" / f"{ref.key}.npy")
        ids = [int(i) for i in np.unique(objects) if i > 0]
        assert len(ids) == len(sample.instances)
        for mask, object_id in zip(sample.instances.masks, ids, strict=True):
            np.testing.assert_array_equal(mask, objects == object_id)
    assert reader.metadata_files() == [labelme_root.resolve() / "labels.txt"]


def test_class_list_inferred_from_the_labels(examples: Path) -> None:
    reader = open_dataset("labelme", examples / "semantic_segmentation" / "data_annotated")
    assert reader.class_names == ["bottle", "bus", "car", "chair", "person", "sofa"]
    loaded = [reader.load(ref) for ref in reader.samples()]
    assert [len(s.instances) for s in loaded] == [4, 9, 3]  # no group_id: one per shape
    assert loaded[0].instances.areas.tolist() == [15676, 17181, 43, 873]
    assert reader.options() == {"class_names": None}
    assert reader.metadata_files() == []


def test_video_frames(examples: Path) -> None:
    reader = open_dataset("labelme", examples / "video_annotation" / "data_annotated")
    assert reader.class_names == ["car", "track"]
    refs = reader.samples()
    assert [r.key for r in refs] == [f"0000010{i}" for i in range(5)]
    sample = reader.load(refs[0])
    assert sample.image.shape == (563, 1000, 3)
    assert [reader.class_names[c] for c in sample.instances.class_ids] == ["track", "track", "car"]


def test_embedded_image_data(examples: Path) -> None:
    reader = open_dataset("labelme", examples / "tutorial")
    (ref,) = reader.samples()
    assert ref.files == (examples / "tutorial" / "apc2016_obj3.json",)
    sample = reader.load(ref)
    assert sample.image.shape == (907, 1210, 3)
    # labelme_json_to_dataset's output for this file, shipped next to it
    label = read_png(examples / "tutorial" / "apc2016_obj3_json" / "label.png")
    names = (examples / "tutorial" / "apc2016_obj3_json" / "label_names.txt").read_text().split()
    for mask, class_id in zip(sample.instances.masks, sample.instances.class_ids, strict=True):
        expected = label == names.index(reader.class_names[class_id])
        np.testing.assert_array_equal(mask, expected)


def test_primitive_shapes(examples: Path) -> None:
    """Rectangle and circle are filled; line, point and linestrip carry no area: skipped."""
    reader = open_dataset("labelme", examples / "primitives")
    inst = reader.load(reader.samples()[0]).instances
    labels = [reader.class_names[c] for c in inst.class_ids]
    assert labels == ["rectangle", "circle", "rectangle", "polygon"]
    assert inst.areas[0] == 101 * 101  # (32, 35)-(132, 135), both ends included
    assert inst.areas[2] == 152 * 103
    radius = np.hypot(225 - 195, 125 - 84)
    assert abs(inst.areas[1] / (np.pi * radius**2) - 1) < 0.01
    assert "line" in reader.class_names  # declared, though it has no pixels


def png_b64(mask: np.ndarray) -> str:
    out = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode("ascii")


def test_mask_shapes_and_groups(labelme_root: Path) -> None:
    patch = np.zeros((30, 40), bool)
    patch[5:25, 10:30] = True
    shapes: list[dict[str, Any]] = [
        {"label": "cat", "points": [[100, 50], [139, 79]], "shape_type": "mask",
         "mask": png_b64(patch), "group_id": None},
        {"label": "dog", "points": [[0, 0], [9, 9]], "shape_type": "rectangle", "group_id": 3},
        {"label": "dog", "points": [[20, 0], [29, 9]], "shape_type": "rectangle", "group_id": 3},
    ]  # fmt: skip
    edit_json(labelme_root / "2011_000025.json", lambda d: d.update(shapes=shapes))
    reader = open_dataset("labelme", labelme_root, class_names="labels.txt")
    inst = reader.load(reader.samples()[2]).instances
    assert inst.keys == ("shape0", "group3-dog")
    np.testing.assert_array_equal(inst.masks[0][50:80, 100:140], patch)
    assert inst.areas.tolist() == [400, 200]


def test_nested_folders_give_posix_keys(labelme_root: Path) -> None:
    sub = labelme_root / "day1" / "cam0"
    sub.mkdir(parents=True)
    for name in ("2011_000006.json", "2011_000006.jpg"):
        (labelme_root / name).rename(sub / name)
    reader = open_dataset("labelme", labelme_root)
    refs = reader.samples()
    assert [r.key for r in refs] == ["2011_000003", "2011_000025", "day1/cam0/2011_000006"]
    assert refs[2].files[0] == sub.resolve() / "2011_000006.jpg"
    assert len(reader.load(refs[2]).instances) == 6


# bad input ---------------------------------------------------------------------------


def load_all(root: Path, **options: Any) -> None:
    reader = open_dataset("labelme", root, **options)
    for ref in reader.samples():
        reader.load(ref)


def test_label_missing_from_the_class_list(labelme_root: Path) -> None:
    edit_json(labelme_root / "2011_000006.json", lambda d: d["shapes"][3].update(label="stool"))
    with pytest.raises(DatasetError) as err:
        load_all(labelme_root, class_names="labels.txt")
    check_message(err.value, "2011_000006.json", "shape 3", "'stool'", "labels.txt")


@pytest.mark.parametrize("image_path", ["../../../../etc/passwd", "/etc/passwd"])
def test_image_path_escaping_the_root(labelme_root: Path, image_path: str) -> None:
    edit_json(labelme_root / "2011_000003.json", lambda d: d.update(imagePath=image_path))
    with pytest.raises(DatasetError) as err:
        load_all(labelme_root)
    check_message(err.value, "passwd", "escapes the dataset root")


def test_missing_image(labelme_root: Path) -> None:
    (labelme_root / "2011_000025.jpg").unlink()
    with pytest.raises(DatasetError) as err:
        load_all(labelme_root)
    check_message(err.value, "2011_000025.json", "imagePath '2011_000025.jpg' not found")


def test_json_syntax_error(labelme_root: Path) -> None:
    (labelme_root / "2011_000003.json").write_text('{"shapes": [,]}')
    with pytest.raises(DatasetError) as err:
        load_all(labelme_root)
    check_message(err.value, "2011_000003.json", "invalid JSON at line 1, column 13")


def test_not_a_labelme_file(labelme_root: Path) -> None:
    (labelme_root / "meta.json").write_text(json.dumps({"images": []}))
    with pytest.raises(DatasetError) as err:
        load_all(labelme_root)
    check_message(err.value, "meta.json", "has no 'shapes'")


def test_polygon_with_two_points(labelme_root: Path) -> None:
    edit_json(
        labelme_root / "2011_000003.json", lambda d: d["shapes"][3].update(points=[[1, 2], [3, 4]])
    )
    with pytest.raises(DatasetError) as err:
        load_all(labelme_root)
    check_message(err.value, "2011_000003.json", "shape 3", "at least 3 points, got 2")


def test_point_far_outside_the_image(labelme_root: Path) -> None:
    circle = {"label": "cat", "points": [[10, 10], [1e6, 10]], "shape_type": "circle"}
    edit_json(labelme_root / "2011_000025.json", lambda d: d["shapes"].append(circle))
    with pytest.raises(DatasetError) as err:
        load_all(labelme_root)
    check_message(err.value, "2011_000025.json", "shape 3", "(1e+06, 10)", "far outside")


def test_unknown_shape_type(labelme_root: Path) -> None:
    edit_json(labelme_root / "2011_000003.json", lambda d: d["shapes"][0].update(shape_type="blob"))
    with pytest.raises(DatasetError) as err:
        load_all(labelme_root)
    check_message(err.value, "2011_000003.json", "unknown shape_type 'blob'")


def test_image_data_not_base64(labelme_root: Path) -> None:
    edit_json(labelme_root / "2011_000003.json", lambda d: d.update(imageData="not base64!"))
    with pytest.raises(DatasetError) as err:
        load_all(labelme_root)
    check_message(err.value, "2011_000003.json", "imageData is not valid base64")


def test_image_data_not_an_image(labelme_root: Path) -> None:
    junk = base64.b64encode(b"hello").decode()
    edit_json(labelme_root / "2011_000003.json", lambda d: d.update(imageData=junk))
    with pytest.raises(ImageError) as err:
        load_all(labelme_root)
    check_message(err.value, "2011_000003.json", "not an image")


def test_truncated_image(labelme_root: Path) -> None:
    truncate(labelme_root / "2011_000006.jpg")
    with pytest.raises(ImageError) as err:
        load_all(labelme_root)
    check_message(err.value, "2011_000006.jpg", "truncated")


def test_image_size_differs_from_json(labelme_root: Path) -> None:
    edit_json(labelme_root / "2011_000025.json", lambda d: d.update(imageHeight=400))
    with pytest.raises(DatasetError) as err:
        load_all(labelme_root)
    check_message(err.value, "2011_000025.jpg", "500x375", "500x400", "2011_000025.json")


def test_missing_class_names_file(labelme_root: Path) -> None:
    with pytest.raises(DatasetError) as err:
        open_dataset("labelme", labelme_root, class_names="classes.txt")
    check_message(err.value, "classes.txt", "not found")


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        open_dataset("labelme", tmp_path).samples()
    check_message(err.value, str(tmp_path), "no samples")
