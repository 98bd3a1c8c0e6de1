"""The reader contract, checked on every registered format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from knnvocab.datasets import FORMATS, list_formats, open_dataset
from knnvocab.errors import ConfigError, DatasetError

from .builders import check_message

# format -> (fixture giving its root, sub-folder, options)
DATASETS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "index-masks": ("index_masks_root", "", {}),
    "voc": ("voc_root", "", {"split": "val"}),
    "coco": ("coco_examples", "", {}),
    "labelme": ("examples", "instance_segmentation/data_annotated", {}),
    "coco-panoptic": ("panoptic_root", "", {}),
    "ade20k-150": ("ade150_root", "", {}),
    "ade20k-847": ("ade847_root", "", {}),
    "cityscapes": ("cityscapes_root", "", {}),
}


def test_every_format_is_registered_and_described() -> None:
    formats = list_formats()
    assert sorted(formats) == sorted(DATASETS)
    assert all(description for description in formats.values())
    assert set(FORMATS) == set(DATASETS)


@pytest.mark.parametrize("fmt", sorted(DATASETS))
def test_reader_contract(fmt: str, request: pytest.FixtureRequest) -> None:
    fixture, sub, options = DATASETS[fmt]
    root = Path(request.getfixturevalue(fixture)) / sub
    reader = open_dataset(fmt, root, **options)
    assert reader.format == fmt
    refs = reader.samples()
    keys = [r.key for r in refs]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    for ref in refs:
        assert "\\" not in ref.key and not Path(ref.key).suffix
        assert all(f.is_absolute() and f.is_relative_to(reader.root) for f in ref.files)
    assert all(p.is_file() for p in reader.metadata_files())
    # options are JSON-able and reopen the same dataset
    reopened = open_dataset(fmt, root, **json.loads(json.dumps(reader.options())))
    assert [r.key for r in reopened.samples()] == keys
    assert reopened.class_names == reader.class_names
    sample = reader.load(refs[0])
    assert sample.key == refs[0].key
    assert sample.files == tuple(str(f) for f in refs[0].files)
    inst = sample.instances
    assert len(inst) > 0 and (inst.areas > 0).all()
    assert all(0 <= c < len(reader.class_names) for c in inst.class_ids)
    assert not (inst.masks & inst.ignore).any()


def test_unknown_format() -> None:
    with pytest.raises(ConfigError, match="unknown dataset format 'kitti'"):
        open_dataset("kitti", Path())


@pytest.mark.parametrize("fmt", sorted(DATASETS))
def test_missing_root(fmt: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        open_dataset(fmt, tmp_path / "nowhere")
    check_message(err.value, "nowhere", "dataset not found")
