"""Index-mask folders: ``images/`` and ``masks/`` with matching stems, and a class list.

Each mask is a single-channel PNG whose pixel value is the index of a line of
``class_names.txt``; 255 is ignore. Every class present in an image is one instance
(keyed ``class{index}``), as semantic datasets have no instance ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from knnvocab.datasets.base import DatasetReader, SampleRef, image_files, read_class_names
from knnvocab.errors import DatasetError
from knnvocab.imageio import DEFAULT_MAX_PIXELS, load_label_png, load_rgb
from knnvocab.types import Instances, LabelledImage

IGNORE = 255


class IndexMaskReader(DatasetReader):
    format = "index-masks"
    description = "images/ + masks/ (single-channel index PNGs, 255 = ignore) + class_names.txt"

    def __init__(
        self,
        root: Path,
        *,
        images_dir: str = "images",
        masks_dir: str = "masks",
        class_names: str | Path = "class_names.txt",
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__(root, max_pixels=max_pixels)
        self.images_dir = self.inside(images_dir, "images folder")
        self.masks_dir = self.inside(masks_dir, "masks folder")
        self.class_names_path = self.inside(class_names, "class names file")
        for folder, what in ((self.images_dir, "images"), (self.masks_dir, "masks")):
            if not folder.is_dir():
                raise DatasetError(folder, f"{what} folder not found")
        self.class_names = read_class_names(self.class_names_path)

    def options(self) -> dict[str, Any]:
        return {
            "images_dir": str(self.images_dir.relative_to(self.root)),
            "masks_dir": str(self.masks_dir.relative_to(self.root)),
            "class_names": str(self.class_names_path.relative_to(self.root)),
        }

    def metadata_files(self) -> list[Path]:
        return [self.class_names_path]

    def samples(self) -> list[SampleRef]:
        refs = []
        for image in image_files(self.images_dir):
            image = self.inside(image, "image")
            mask = self.masks_dir / f"{image.stem}.png"
            if not mask.is_file():
                raise DatasetError(image, f"no mask {mask.name} in {self.masks_dir}")
            refs.append(SampleRef(key=image.stem, files=(image, self.inside(mask, "mask"))))
        return self.require_samples(refs, self.images_dir)

    def load(self, ref: SampleRef) -> LabelledImage:
        image_path, mask_path = ref.files
        image = load_rgb(image_path, self.max_pixels)
        labels = load_label_png(mask_path, self.max_pixels)
        if labels.ndim != 2:
            raise DatasetError(
                mask_path, f"expected a single-channel mask, got shape {labels.shape}"
            )
        if labels.shape != image.shape[:2]:
            raise DatasetError(
                mask_path,
                f"mask is {labels.shape[1]}x{labels.shape[0]} but its image is "
                f"{image.shape[1]}x{image.shape[0]}",
            )
        present = np.unique(labels)
        for value in present:
            if value != IGNORE:
                self.class_name(int(value), mask_path)
        instances = Instances.from_label_map(labels, ignore_value=IGNORE)
        return LabelledImage(ref.key, image, instances, tuple(str(f) for f in ref.files))
