"""ADE20K, as used by open-vocabulary segmentation benchmarks.

- ``ade20k-150`` (ADEChallengeData2016): ``images/{split}/*.jpg`` and
  ``annotations/{split}/*.png``, uint8; 0 is "other" (-> ignore), value v is class v - 1 of
  the 150 standard names.
- ``ade20k-847`` (ADE20K-full, MaskFormer's ``prepare_ade20k_full_sem_seg.py`` output):
  ``images_detectron2/{split}/*.jpg`` (or ``images/{split}``) and
  ``annotations_detectron2/{split}/*.tif``, uint16 TIFF; 65535 is ignore, a value is a
  class index. The 847 names are not bundled: give ``class_names`` or put
  ``class_names.txt`` in the root.

Both are semantic datasets: one instance per class present (key ``class{index}``).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from knnvocab.datasets.ade20k_names import ADE20K_150
from knnvocab.datasets.base import DatasetReader, SampleRef, image_files, read_class_names
from knnvocab.datasets.label_maps import check_size, check_values, present, read_index_mask
from knnvocab.errors import DatasetError, ImageError
from knnvocab.imageio import DEFAULT_MAX_PIXELS, load_rgb, read_bytes
from knnvocab.types import Instances, IntArray, LabelledImage

ADE150_IGNORE = 0
ADE847_IGNORE = 65535


class _PairedFolders(DatasetReader):
    """Images in ``images_dir`` and one mask per image (same stem) in ``masks_dir``."""

    images_dir: Path
    masks_dir: Path
    mask_suffix = ".png"

    def _check_folders(self) -> None:
        for folder, what in ((self.images_dir, "images"), (self.masks_dir, "annotations")):
            if not folder.is_dir():
                raise DatasetError(folder, f"{what} folder not found")

    def samples(self) -> list[SampleRef]:
        refs = []
        for image in image_files(self.images_dir):
            image = self.inside(image, "image")
            mask = self.masks_dir / f"{image.stem}{self.mask_suffix}"
            if not mask.is_file():
                raise DatasetError(image, f"no annotation {mask.name} in {self.masks_dir}")
            refs.append(SampleRef(key=image.stem, files=(image, self.inside(mask, "annotation"))))
        return self.require_samples(refs, self.images_dir)


class Ade20k150Reader(_PairedFolders):
    format = "ade20k-150"
    description = (
        "ADEChallengeData2016: images/{split}/ + annotations/{split}/ PNGs "
        "(0 = ignore, value v = class v-1 of 150)"
    )

    def __init__(
        self, root: Path, *, split: str = "validation", max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> None:
        super().__init__(root, max_pixels=max_pixels)
        self.split = split
        self.images_dir = self.inside(Path("images", split), "images folder")
        self.masks_dir = self.inside(Path("annotations", split), "annotations folder")
        self._check_folders()
        self.class_names = list(ADE20K_150)

    def options(self) -> dict[str, Any]:
        return {"split": self.split}

    def load(self, ref: SampleRef) -> LabelledImage:
        image_path, mask_path = ref.files
        image = load_rgb(image_path, self.max_pixels)
        values = read_index_mask(mask_path, image.shape, self.max_pixels)
        top = int(values.max())
        if top > len(ADE20K_150):
            raise DatasetError(
                mask_path, f"value {top} is above {len(ADE20K_150)} (values are 1..150, 0 = ignore)"
            )
        instances = Instances.from_label_map(values - 1, ignore_value=ADE150_IGNORE - 1)
        return LabelledImage(ref.key, image, instances, (str(image_path), str(mask_path)))


class Ade20k847Reader(_PairedFolders):
    format = "ade20k-847"
    description = (
        "ADE20K-full: images_detectron2/{split}/ + annotations_detectron2/{split}/ uint16 TIFFs "
        "(65535 = ignore) + class_names.txt"
    )
    mask_suffix = ".tif"

    def __init__(
        self,
        root: Path,
        *,
        split: str = "validation",
        class_names: str | Path = "class_names.txt",
        images_dir: str | Path | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__(root, max_pixels=max_pixels)
        self.split = split
        if images_dir is None:
            detectron = Path("images_detectron2", split)
            images_dir = detectron if (self.root / detectron).is_dir() else Path("images", split)
        self.images_dir = self.inside(images_dir, "images folder")
        self.masks_dir = self.inside(Path("annotations_detectron2", split), "annotations folder")
        self._check_folders()
        self.class_names_path = self.inside(class_names, "class names file")
        if not self.class_names_path.is_file():
            raise DatasetError(
                self.class_names_path,
                "class names file not found (ADE20K-847 names are not bundled: "
                "put class_names.txt in the dataset root or pass class_names)",
            )
        self.class_names = read_class_names(self.class_names_path)

    def options(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "class_names": self.class_names_path.relative_to(self.root).as_posix(),
            "images_dir": self.images_dir.relative_to(self.root).as_posix(),
        }

    def metadata_files(self) -> list[Path]:
        return [self.class_names_path]

    def load(self, ref: SampleRef) -> LabelledImage:
        image_path, mask_path = ref.files
        image = load_rgb(image_path, self.max_pixels)
        labels = read_label_tiff(mask_path, self.max_pixels)
        check_size(mask_path, labels.shape, image.shape)
        check_values(mask_path, present(labels), len(self.class_names), ignore=ADE847_IGNORE)
        instances = Instances.from_label_map(labels, ignore_value=ADE847_IGNORE)
        return LabelledImage(ref.key, image, instances, (str(image_path), str(mask_path)))


def read_label_tiff(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> IntArray:
    """Decode a single-channel integer TIFF (first page) into (H, W) int64."""
    import tifffile

    data = read_bytes(path)
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages[0]
            pixels = math.prod(page.shape[:2])
            if pixels > max_pixels:
                raise ImageError(path, f"TIFF has {pixels:,} pixels, above {max_pixels:,}")
            array = np.asarray(page.asarray())
    except ImageError:
        raise
    except Exception as exc:  # tifffile raises many exception types on corrupt input
        raise ImageError(path, f"cannot decode TIFF ({type(exc).__name__}: {exc})") from None
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.integer):
        raise ImageError(
            path, f"expected a single-channel integer label TIFF, got {array.shape} {array.dtype}"
        )
    return array.astype(np.int64)
