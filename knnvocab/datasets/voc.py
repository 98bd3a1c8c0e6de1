"""Pascal VOC segmentation: ``JPEGImages/``, ``SegmentationClass/``, ``SegmentationObject/``.

Masks are palette PNGs whose palette *index* is the class (``SegmentationClass``) or the
object id (``SegmentationObject``); 255 is the void / boundary label. labelme's export
(``labelme2voc.py``) writes the PNGs to ``SegmentationClassPNG/`` and
``SegmentationObjectPNG/`` instead (``SegmentationClass/`` then holds ``.npy`` arrays); that
layout is detected and read the same way.

Instances: with an object PNG, every object id 1..254 is one instance (key ``obj{id}``)
whose class is the majority class under it; class-map pixels no object covers (typically
background, class 0) become one instance per class (key ``class{c}``). Without an object
PNG, one instance per class. Background is an ordinary class here (index 0), not ignore.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from knnvocab.datasets.base import IMAGE_SUFFIXES, DatasetReader, SampleRef, read_class_names
from knnvocab.datasets.label_maps import check_values, present, read_index_mask
from knnvocab.errors import DatasetError
from knnvocab.imageio import DEFAULT_MAX_PIXELS, load_rgb
from knnvocab.types import BoolArray, Instances, IntArray, LabelledImage

IGNORE = 255

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


class VocReader(DatasetReader):
    format = "voc"
    description = (
        "Pascal VOC: JPEGImages/ + SegmentationClass/ (+ SegmentationObject/) palette PNGs, "
        "255 = ignore; also labelme's SegmentationClassPNG/ variant"
    )

    def __init__(
        self,
        root: Path,
        *,
        split: str | None = None,
        class_names: str | Path | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__(root, max_pixels=max_pixels)
        self.split = split
        # labelme2voc keeps .npy arrays in SegmentationClass/ and the PNGs next to them
        self.layout = "labelme" if (self.root / "SegmentationClassPNG").is_dir() else "official"
        suffix = "PNG" if self.layout == "labelme" else ""
        self.images_dir = self.inside("JPEGImages", "images folder")
        self.class_dir = self.inside(f"SegmentationClass{suffix}", "class masks folder")
        self.object_dir = self.inside(f"SegmentationObject{suffix}", "object masks folder")
        for folder, what in ((self.images_dir, "images"), (self.class_dir, "class masks")):
            if not folder.is_dir():
                raise DatasetError(folder, f"{what} folder not found (not a Pascal VOC layout)")
        self.split_file: Path | None = None
        if split is not None:
            self.split_file = self.inside(
                Path("ImageSets", "Segmentation", f"{split}.txt"), "split file"
            )
            if not self.split_file.is_file():
                raise DatasetError(self.split_file, f"split {split!r} not found")
        self.class_names_path = self._class_names_path(class_names)
        self.class_names = (
            read_class_names(self.class_names_path)
            if self.class_names_path is not None
            else list(VOC_CLASSES)
        )

    def _class_names_path(self, class_names: str | Path | None) -> Path | None:
        if class_names is not None:
            return self.inside(class_names, "class names file")
        default = self.root / "class_names.txt"
        return self.inside(default, "class names file") if default.is_file() else None

    def options(self) -> dict[str, Any]:
        names = self.class_names_path
        return {
            "split": self.split,
            "class_names": None if names is None else names.relative_to(self.root).as_posix(),
        }

    def metadata_files(self) -> list[Path]:
        return [p for p in (self.class_names_path, self.split_file) if p is not None]

    def samples(self) -> list[SampleRef]:
        if self.split_file is None:
            ids = [p.stem for p in sorted(self.class_dir.glob("*.png")) if p.is_file()]
        else:
            ids = self._split_ids(self.split_file)
        refs = [self._ref(sample_id) for sample_id in ids]
        return self.require_samples(refs, self.split_file or self.class_dir)

    def _split_ids(self, split_file: Path) -> list[str]:
        try:
            lines = split_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(split_file, f"cannot read split file ({exc})") from None
        # first column: ImageSets/Main-style files add a flag after the id
        return [line.split()[0] for line in lines if line.strip()]

    def _ref(self, sample_id: str) -> SampleRef:
        class_png = self.inside(self.class_dir / f"{sample_id}.png", "class mask")
        if not class_png.is_file():
            raise DatasetError(class_png, f"class mask of sample {sample_id!r} not found")
        image = self._image_of(sample_id, class_png)
        object_png = self.inside(self.object_dir / f"{sample_id}.png", "object mask")
        files = (image, class_png, object_png) if object_png.is_file() else (image, class_png)
        return SampleRef(key=sample_id, files=files)

    def _image_of(self, sample_id: str, class_png: Path) -> Path:
        for suffix in IMAGE_SUFFIXES:
            image = self.inside(self.images_dir / f"{sample_id}{suffix}", "image")
            if image.is_file():
                return image
        raise DatasetError(class_png, f"no image {sample_id}.jpg in {self.images_dir}")

    def load(self, ref: SampleRef) -> LabelledImage:
        image = load_rgb(ref.files[0], self.max_pixels)
        class_png = ref.files[1]
        classes = read_index_mask(class_png, image.shape, self.max_pixels)
        check_values(class_png, present(classes), len(self.class_names), ignore=IGNORE)
        if len(ref.files) == 3:
            objects = read_index_mask(ref.files[2], image.shape, self.max_pixels)
            instances = objects_and_classes(classes, objects)
        else:
            instances = Instances.from_label_map(classes, ignore_value=IGNORE)
        return LabelledImage(ref.key, image, instances, tuple(str(f) for f in ref.files))


def objects_and_classes(classes: IntArray, objects: IntArray) -> Instances:
    """Instances of a VOC class map (H, W) and object map (H, W), both int, 255 = void.

    Each object id is one instance of its majority class (void pixels excluded); class
    pixels outside every object form one instance per class.
    """
    ignore: BoolArray = (classes == IGNORE) | (objects == IGNORE)
    masks: list[BoolArray] = []
    class_ids: list[int] = []
    keys: list[str] = []
    covered = np.zeros(classes.shape, bool)
    for object_id in present(objects):
        if object_id in (0, IGNORE):
            continue
        mask = (objects == object_id) & ~ignore
        if not mask.any():
            continue
        values, counts = np.unique(classes[mask], return_counts=True)
        masks.append(mask)
        class_ids.append(int(values[np.argmax(counts)]))
        keys.append(f"obj{object_id}")
        covered |= mask
    rest = np.where(covered | ignore, -1, classes)
    for class_id in present(rest):
        if class_id >= 0:
            masks.append(rest == class_id)
            class_ids.append(class_id)
            keys.append(f"class{class_id}")
    stacked = np.stack(masks) if masks else np.zeros((0, *classes.shape), bool)
    return Instances(stacked, np.array(class_ids, np.int64), tuple(keys), ignore=ignore)
