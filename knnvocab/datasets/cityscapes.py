"""Cityscapes fine annotations, read as the 19 evaluation ("train id") classes.

Layout: ``leftImg8bit/{split}/{city}/*_leftImg8bit.png`` with
``gtFine/{split}/{city}/*_gtFine_labelIds.png`` and ``*_gtFine_instanceIds.png``. labelIds
map to train ids with the official table of cityscapesScripts; every label without a train
id (unlabeled, ego vehicle, parking, caravan, …) becomes ignore.

Instances: an instanceIds value >= 1000 is one thing instance (class = train id of
value // 1000, key ``inst{value}``); thing-class pixels without an instance id (Cityscapes'
"group" regions, e.g. a crowd of people) are one crowd instance per class (key
``crowd{trainId}``), as cityscapesScripts' panoptic conversion does; every stuff class is
one instance (key ``class{trainId}``). Without an instanceIds PNG: one instance per class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from knnvocab.datasets.base import DatasetReader, SampleRef
from knnvocab.datasets.label_maps import present, read_index_mask
from knnvocab.errors import DatasetError
from knnvocab.imageio import DEFAULT_MAX_PIXELS, load_rgb
from knnvocab.types import BoolArray, Instances, IntArray, LabelledImage

IGNORE = 255
CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip
THING_TRAIN_IDS = frozenset(range(11, 19))
# labelId -> trainId, cityscapesScripts helpers/labels.py (labelIds 0..33)
LABEL_TO_TRAIN = np.array(
    [255, 255, 255, 255, 255, 255, 255, 0, 1, 255, 255, 2, 3, 4, 255, 255, 255, 5, 255, 6, 7,
     8, 9, 10, 11, 12, 13, 14, 15, 255, 255, 16, 17, 18],
    np.int64,
)  # fmt: skip
IMAGE_SUFFIX = "_leftImg8bit.png"


class CityscapesReader(DatasetReader):
    format = "cityscapes"
    description = "Cityscapes leftImg8bit/ + gtFine/ labelIds and instanceIds, 19 train classes"

    def __init__(
        self, root: Path, *, split: str = "val", max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> None:
        super().__init__(root, max_pixels=max_pixels)
        self.split = split
        self.images_dir = self.inside(Path("leftImg8bit", split), "images folder")
        self.gt_dir = self.inside(Path("gtFine", split), "annotations folder")
        for folder, what in ((self.images_dir, "images"), (self.gt_dir, "gtFine")):
            if not folder.is_dir():
                raise DatasetError(folder, f"{what} folder not found (not a Cityscapes layout)")
        self.class_names = list(CITYSCAPES_CLASSES)
        self.thing_classes: set[int] = set(THING_TRAIN_IDS)

    def options(self) -> dict[str, Any]:
        return {"split": self.split}

    def samples(self) -> list[SampleRef]:
        refs = []
        for city in sorted(p for p in self.images_dir.iterdir() if p.is_dir()):
            for image in sorted(city.glob(f"*{IMAGE_SUFFIX}")):
                refs.append(self._ref(city.name, self.inside(image, "image")))
        return self.require_samples(refs, self.images_dir)

    def _ref(self, city: str, image: Path) -> SampleRef:
        stem = image.name.removesuffix(IMAGE_SUFFIX)
        labels = self.inside(self.gt_dir / city / f"{stem}_gtFine_labelIds.png", "labelIds")
        if not labels.is_file():
            raise DatasetError(image, f"no {labels.name} in {labels.parent}")
        inst = self.inside(self.gt_dir / city / f"{stem}_gtFine_instanceIds.png", "instanceIds")
        files = (image, labels, inst) if inst.is_file() else (image, labels)
        return SampleRef(key=f"{city}/{image.stem}", files=files)

    def load(self, ref: SampleRef) -> LabelledImage:
        image = load_rgb(ref.files[0], self.max_pixels)
        label_path = ref.files[1]
        train = to_train_ids(read_index_mask(label_path, image.shape, self.max_pixels), label_path)
        if len(ref.files) == 3:
            instance_ids = read_index_mask(ref.files[2], image.shape, self.max_pixels)
            instances = self._instances(train, instance_ids, ref.files[2])
        else:
            instances = Instances.from_label_map(train, ignore_value=IGNORE)
        return LabelledImage(ref.key, image, instances, tuple(str(f) for f in ref.files))

    def _instances(self, train: IntArray, instance_ids: IntArray, path: Path) -> Instances:
        ignore: BoolArray = train == IGNORE
        masks: list[BoolArray] = []
        class_ids: list[int] = []
        keys: list[str] = []
        crowd: list[bool] = []
        things = instance_ids >= 1000
        for value in present(instance_ids[things]):
            train_id = int(to_train_ids(np.array([value // 1000]), path)[0])
            mask = (instance_ids == value) & ~ignore
            if train_id == IGNORE or not mask.any():
                continue  # caravan / trailer instances have no train id
            masks.append(mask)
            class_ids.append(train_id)
            keys.append(f"inst{value}")
            crowd.append(False)
        rest = np.where(things | ignore, IGNORE, train)
        for train_id in present(rest):
            if train_id != IGNORE:
                is_thing = train_id in THING_TRAIN_IDS
                masks.append(rest == train_id)
                class_ids.append(train_id)
                keys.append(f"crowd{train_id}" if is_thing else f"class{train_id}")
                crowd.append(is_thing)
        return Instances(
            masks=np.stack(masks) if masks else np.zeros((0, *train.shape), bool),
            class_ids=np.array(class_ids, np.int64),
            keys=tuple(keys),
            crowd=np.array(crowd, bool),
            ignore=ignore,
        )


def to_train_ids(label_ids: IntArray, path: Path) -> IntArray:
    """Map Cityscapes labelIds (0..33) to train ids (0..18, 255 = ignore)."""
    top = int(label_ids.max()) if label_ids.size else 0
    if top >= len(LABEL_TO_TRAIN):
        raise DatasetError(path, f"labelId {top} is not a Cityscapes label (0..33)")
    return LABEL_TO_TRAIN[label_ids]
