"""COCO instance annotations: one JSON (images, annotations, categories) and the images.

Segmentations may be polygons, uncompressed RLE (``counts`` a list) or compressed RLE
(``counts`` a string); they are decoded with pycocotools. The class list is the categories
sorted by id: dataset class index = position in that order, not the category id. Every
annotation is one instance (key ``ann{id}``, ``crowd`` = ``iscrowd``); images without
annotations are samples with no instances. COCO has no void label: ``ignore`` is empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from knnvocab.datasets.base import DatasetReader, SampleRef
from knnvocab.datasets.json_fields import (
    category,
    crowd,
    get,
    number,
    read_json,
    top_level,
    unique_ids,
)
from knnvocab.errors import DatasetError
from knnvocab.imageio import DEFAULT_MAX_PIXELS, load_rgb
from knnvocab.rle import check_runs, compressed_counts, quiet
from knnvocab.types import BoolArray, Instances, LabelledImage


@dataclass
class _Annotation:
    ann_id: int
    class_index: int
    segmentation: Any
    crowd: bool


@dataclass
class _Image:
    image_id: int
    file_name: str
    height: int
    width: int
    annotations: list[_Annotation] = field(default_factory=list)


class CocoReader(DatasetReader):
    format = "coco"
    description = "COCO instances JSON (polygons, RLE) + images"

    def __init__(
        self,
        root: Path,
        *,
        annotations: str | Path = "annotations.json",
        images_dir: str | Path | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__(root, max_pixels=max_pixels)
        self.annotations_path = self.inside(annotations, "annotations file")
        self.images_dir = (
            self.inside(images_dir, "images folder")
            if images_dir is not None
            else self.annotations_path.parent
        )
        if not self.images_dir.is_dir():
            raise DatasetError(self.images_dir, "images folder not found")
        doc = read_json(self.annotations_path)
        images, anns, cats = top_level(
            self.annotations_path, doc, ("images", "annotations", "categories")
        )
        self.category_index = self._read_categories(cats)
        self._images = self._read_images(images)
        self._read_annotations(anns)

    def _read_categories(self, cats: list[Any]) -> dict[int, int]:
        path = self.annotations_path
        by_id = unique_ids(path, cats, "categories")
        names: dict[str, int] = {}
        for cat_id in sorted(by_id):
            name = get(by_id[cat_id], "name", str, path, f"category {cat_id}")
            if name in names:
                raise DatasetError(
                    path, f"categories {names[name]} and {cat_id} share the name {name!r}"
                )
            names[name] = cat_id
        self.class_names = list(names)
        return {cat_id: index for index, cat_id in enumerate(sorted(by_id))}

    def _read_images(self, images: list[Any]) -> dict[int, _Image]:
        path = self.annotations_path
        out: dict[int, _Image] = {}
        for image_id, entry in unique_ids(path, images, "images").items():
            where = f"image {image_id}"
            out[image_id] = _Image(
                image_id,
                get(entry, "file_name", str, path, where),
                _positive(get(entry, "height", int, path, where), path, where),
                _positive(get(entry, "width", int, path, where), path, where),
            )
        return out

    def _read_annotations(self, anns: list[Any]) -> None:
        path = self.annotations_path
        for ann_id, entry in unique_ids(path, anns, "annotations").items():
            where = f"annotation {ann_id}"
            image_id = get(entry, "image_id", int, path, where)
            if image_id not in self._images:
                raise DatasetError(path, f"{where}: unknown image_id {image_id}")
            label = category(entry, self.category_index, path, where)
            image = self._images[image_id]
            segmentation = entry.get("segmentation")
            check_segmentation(segmentation, (image.height, image.width), path, where)
            image.annotations.append(
                _Annotation(ann_id, label, segmentation, crowd(entry, path, where))
            )

    def options(self) -> dict[str, Any]:
        return {
            "annotations": self.annotations_path.relative_to(self.root).as_posix(),
            "images_dir": self.images_dir.relative_to(self.root).as_posix(),
        }

    def metadata_files(self) -> list[Path]:
        return [self.annotations_path]

    def samples(self) -> list[SampleRef]:
        refs = []
        for image in self._images.values():
            file_name = image.file_name.replace("\\", "/")
            path = self.inside(self.images_dir / file_name, f"image {image.image_id}")
            if not path.is_file():
                raise DatasetError(
                    self.annotations_path, f"image {image.image_id}: {path} not found"
                )
            key = PurePosixPath(file_name).with_suffix("").as_posix()
            refs.append(SampleRef(key=key, files=(path,), extra=image.image_id))
        return self.require_samples(refs, self.annotations_path)

    def load(self, ref: SampleRef) -> LabelledImage:
        entry = self._images[ref.extra]
        image_path = ref.files[0]
        rgb = load_rgb(image_path, self.max_pixels)
        height, width = rgb.shape[:2]
        if (height, width) != (entry.height, entry.width):
            raise DatasetError(
                image_path,
                f"image is {width}x{height} but {self.annotations_path.name} says "
                f"{entry.width}x{entry.height} (image id {entry.image_id})",
            )
        masks = [self._decode(a, height, width) for a in entry.annotations]
        instances = Instances(
            masks=np.stack(masks) if masks else np.zeros((0, height, width), bool),
            class_ids=np.array([a.class_index for a in entry.annotations], np.int64),
            keys=tuple(f"ann{a.ann_id}" for a in entry.annotations),
            crowd=np.array([a.crowd for a in entry.annotations], bool),
        )
        return LabelledImage(ref.key, rgb, instances, (str(image_path),))

    def _decode(self, ann: _Annotation, height: int, width: int) -> BoolArray:
        where = f"annotation {ann.ann_id}"
        return decode_segmentation(ann.segmentation, height, width, self.annotations_path, where)


def _positive(value: int, path: Path, where: str) -> int:
    if value <= 0:
        raise DatasetError(path, f"{where}: image size must be positive, got {value}")
    return value


def check_segmentation(seg: Any, size: tuple[int, int], path: Path, where: str) -> None:
    """Cheap structural checks of a COCO segmentation (full decoding happens in `load`)."""
    if isinstance(seg, list):
        if not seg:
            raise DatasetError(path, f"{where}: empty polygon list")
        for i, poly in enumerate(seg):
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
                n = len(poly) if isinstance(poly, list) else type(poly).__name__
                raise DatasetError(
                    path,
                    f"{where}: polygon {i} needs an even number (>= 6) of coordinates, got {n}",
                )
    elif isinstance(seg, dict):
        rle_size = get(seg, "size", list, path, f"{where} segmentation")
        if rle_size != list(size):
            raise DatasetError(
                path,
                f"{where}: RLE size {rle_size} differs from the image size "
                f"[{size[0]}, {size[1]}] (height, width)",
            )
        counts = seg.get("counts")
        if not isinstance(counts, list | str):
            raise DatasetError(path, f"{where}: RLE counts must be a list or a string")
    else:
        raise DatasetError(
            path, f"{where}: segmentation must be a list of polygons or an RLE object"
        )


def decode_segmentation(seg: Any, height: int, width: int, path: Path, where: str) -> BoolArray:
    """(H, W) bool mask of a polygon list, uncompressed or compressed RLE."""
    from pycocotools import mask as mask_utils

    if isinstance(seg, list):
        polys = [
            _polygon(poly, (height, width), path, f"{where} polygon {i}")
            for i, poly in enumerate(seg)
        ]
    else:
        counts = seg["counts"]
        runs = (
            compressed_counts(counts, path, where, DatasetError)
            if isinstance(counts, str)
            else counts
        )
        check_runs(runs, height * width, path, where, DatasetError)
    try:
        with quiet():
            if isinstance(seg, list):
                rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
            elif isinstance(counts, str):
                rle = {"size": [height, width], "counts": counts.encode("ascii")}
            else:
                rle = mask_utils.frPyObjects(
                    {"size": [height, width], "counts": runs}, height, width
                )
            return np.asarray(mask_utils.decode(rle), dtype=bool)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DatasetError(path, f"{where}: cannot decode segmentation ({exc})") from None


def _polygon(poly: list[Any], size: tuple[int, int], path: Path, where: str) -> list[float]:
    """Checked coordinates; far-away vertices are refused, as pycocotools samples every
    edge pixel by pixel and a vertex at 1e9 exhausts memory."""
    coords = [number(v, path, where) for v in poly]
    height, width = size
    for x, y in zip(coords[::2], coords[1::2], strict=True):
        if not (-width <= x <= 2 * width and -height <= y <= 2 * height):
            raise DatasetError(
                path, f"{where}: vertex ({x:g}, {y:g}) lies far outside the {width}x{height} image"
            )
    return coords
