"""Shared fixtures: real labelled photos, and datasets written from them in every format.

The session fixtures are built once and must not be modified; a test that corrupts a
dataset copies it first (``copy_of``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from knnvocab.datasets.voc import VOC_CLASSES

from . import builders
from .builders import Source


@pytest.fixture(scope="session")
def examples() -> Path:
    """The Debian package labelme-examples: real VOC photos with labelme, VOC, COCO labels."""
    if not builders.LABELME_VOC.is_dir():
        pytest.fail(
            f"{builders.EXAMPLES} is missing: the dataset tests read real labelled photos "
            "from the Debian package labelme-examples; `make test` installs it "
            "(apt-get install labelme-examples)",
            pytrace=False,
        )
    return builders.EXAMPLES


@pytest.fixture(scope="session")
def sources(examples: Path) -> list[Source]:
    return builders.load_sources()


@pytest.fixture(scope="session")
def labelme_voc(examples: Path) -> Path:
    """labelme2voc output (SegmentationClassPNG/ variant) of the 3 instance examples."""
    return examples / "instance_segmentation" / "data_dataset_voc"


@pytest.fixture(scope="session")
def coco_examples(examples: Path) -> Path:
    """labelme2coco output of the same 3 photos: annotations.json + JPEGImages/."""
    return examples / "instance_segmentation" / "data_dataset_coco"


@pytest.fixture(scope="session")
def datasets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture(scope="session")
def voc_root(datasets_dir: Path, sources: list[Source]) -> Path:
    return builders.write_voc(datasets_dir / "voc", sources)


@pytest.fixture(scope="session")
def index_masks_root(datasets_dir: Path, sources: list[Source]) -> Path:
    return builders.write_index_masks(datasets_dir / "index_masks", sources, list(VOC_CLASSES))


@pytest.fixture(scope="session")
def panoptic_root(datasets_dir: Path, sources: list[Source]) -> Path:
    return builders.write_coco_panoptic(datasets_dir / "panoptic", sources, list(VOC_CLASSES))


@pytest.fixture(scope="session")
def ade150_root(datasets_dir: Path, sources: list[Source]) -> Path:
    return builders.write_ade150(datasets_dir / "ade150", sources)


@pytest.fixture(scope="session")
def ade847_root(datasets_dir: Path, sources: list[Source]) -> Path:
    return builders.write_ade847(datasets_dir / "ade847", sources)


@pytest.fixture(scope="session")
def cityscapes_root(datasets_dir: Path, sources: list[Source]) -> Path:
    return builders.write_cityscapes(datasets_dir / "cityscapes", sources)


@pytest.fixture
def copy_of(tmp_path: Path) -> Callable[[Path], Path]:
    """Copy a dataset into this test's tmp_path, to corrupt it safely."""

    def copy(root: Path) -> Path:
        return builders.copy_tree(root, tmp_path / root.name)

    return copy
