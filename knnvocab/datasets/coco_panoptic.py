"""COCO panoptic: a JSON (images, annotations with ``segments_info``, categories) + PNGs.

Every PNG pixel encodes a segment id = R + 256·G + 256²·B; id 0 is void (-> ``ignore``).
Each segment of ``segments_info`` is one instance (key ``seg{id}``, ``crowd`` = ``iscrowd``).
As in panopticapi's ``pq_compute``, an id in the PNG that ``segments_info`` does not list,
or a listed segment absent from the PNG, is an error. The class list is the categories
sorted by id (dataset class index = position); ``thing_classes`` holds the indices of the
categories with ``isthing`` = 1. Samples are the panoptic annotations (one per image);
an image without one is not a sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from knnvocab.datasets.base import DatasetReader, SampleRef
from knnvocab.datasets.json_fields import category, crowd, get, read_json, top_level, unique_ids
from knnvocab.datasets.label_maps import check_size
from knnvocab.errors import DatasetError, ImageError
from knnvocab.imageio import DEFAULT_MAX_PIXELS, load_rgb, open_image, read_bytes
from knnvocab.types import Instances, IntArray, LabelledImage


@dataclass(frozen=True)
class _Segment:
    segment_id: int
    class_index: int
    crowd: bool


@dataclass(frozen=True)
class _Entry:
    image_id: int
    image_name: str
    png_name: str
    height: int
    width: int
    segments: tuple[_Segment, ...]


class CocoPanopticReader(DatasetReader):
    format = "coco-panoptic"
    description = "COCO panoptic JSON + PNGs (id = R + 256·G + 256²·B, 0 = void) + images"

    def __init__(
        self,
        root: Path,
        *,
        annotations: str | Path = "panoptic.json",
        masks_dir: str | Path | None = None,
        images_dir: str | Path | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__(root, max_pixels=max_pixels)
        self.annotations_path = self.inside(annotations, "annotations file")
        # panopticapi's convention: panoptic_val2017.json next to panoptic_val2017/
        self.masks_dir = self.inside(
            masks_dir if masks_dir is not None else self.annotations_path.with_suffix(""),
            "masks folder",
        )
        self.images_dir = self.inside(
            images_dir if images_dir is not None else self.annotations_path.parent,
            "images folder",
        )
        for folder, what in ((self.masks_dir, "masks"), (self.images_dir, "images")):
            if not folder.is_dir():
                raise DatasetError(folder, f"{what} folder not found")
        doc = read_json(self.annotations_path)
        keys = ("images", "annotations", "categories")
        images, anns, cats = top_level(self.annotations_path, doc, keys)
        self.category_index, self.thing_classes = self._read_categories(cats)
        self._entries = self._read_annotations(
            anns, unique_ids(self.annotations_path, images, "images")
        )

    def _read_categories(self, cats: list[Any]) -> tuple[dict[int, int], set[int]]:
        path = self.annotations_path
        by_id = unique_ids(path, cats, "categories")
        index = {cat_id: i for i, cat_id in enumerate(sorted(by_id))}
        self.class_names = [get(by_id[c], "name", str, path, f"category {c}") for c in index]
        if len(set(self.class_names)) != len(self.class_names):
            dup = next(n for n in self.class_names if self.class_names.count(n) > 1)
            raise DatasetError(path, f"two categories share the name {dup!r}")
        things = {index[c] for c, cat in by_id.items() if cat.get("isthing", 0) == 1}
        return index, things

    def _read_annotations(self, anns: list[Any], images: dict[int, Any]) -> list[_Entry]:
        path = self.annotations_path
        entries: dict[int, _Entry] = {}
        for i, ann in enumerate(anns):
            where = f"annotations[{i}]"
            image_id = get(ann, "image_id", int, path, where)
            if image_id not in images:
                raise DatasetError(path, f"{where}: unknown image_id {image_id}")
            if image_id in entries:
                raise DatasetError(path, f"{where}: a second annotation of image {image_id}")
            image = images[image_id]
            entries[image_id] = _Entry(
                image_id,
                get(image, "file_name", str, path, f"image {image_id}"),
                get(ann, "file_name", str, path, where),
                get(image, "height", int, path, f"image {image_id}"),
                get(image, "width", int, path, f"image {image_id}"),
                self._read_segments(get(ann, "segments_info", list, path, where), where),
            )
        return list(entries.values())

    def _read_segments(self, infos: list[Any], where: str) -> tuple[_Segment, ...]:
        path = self.annotations_path
        segments: dict[int, _Segment] = {}
        for j, info in enumerate(infos):
            at = f"{where} segments_info[{j}]"
            seg_id = get(info, "id", int, path, at)
            if seg_id <= 0 or seg_id >= 256**3:
                raise DatasetError(path, f"{at}: segment id {seg_id} outside 1..16777215")
            if seg_id in segments:
                raise DatasetError(path, f"{at}: duplicate segment id {seg_id}")
            label = category(info, self.category_index, path, at)
            segments[seg_id] = _Segment(seg_id, label, crowd(info, path, at))
        return tuple(segments.values())

    def options(self) -> dict[str, Any]:
        return {
            "annotations": self.annotations_path.relative_to(self.root).as_posix(),
            "masks_dir": self.masks_dir.relative_to(self.root).as_posix(),
            "images_dir": self.images_dir.relative_to(self.root).as_posix(),
        }

    def metadata_files(self) -> list[Path]:
        return [self.annotations_path]

    def samples(self) -> list[SampleRef]:
        refs = []
        for entry in self._entries:
            image_name = entry.image_name.replace("\\", "/")
            image = self.inside(self.images_dir / image_name, f"image {entry.image_id}")
            png = self.inside(self.masks_dir / entry.png_name, f"mask of image {entry.image_id}")
            for path in (image, png):
                if not path.is_file():
                    raise DatasetError(
                        self.annotations_path, f"image {entry.image_id}: {path} not found"
                    )
            key = PurePosixPath(image_name).with_suffix("").as_posix()
            refs.append(SampleRef(key=key, files=(image, png), extra=entry))
        return self.require_samples(refs, self.annotations_path)

    def load(self, ref: SampleRef) -> LabelledImage:
        entry: _Entry = ref.extra
        image_path, png_path = ref.files
        image = load_rgb(image_path, self.max_pixels)
        if image.shape[:2] != (entry.height, entry.width):
            raise DatasetError(
                image_path,
                f"image is {image.shape[1]}x{image.shape[0]} but {self.annotations_path.name} "
                f"says {entry.width}x{entry.height} (image id {entry.image_id})",
            )
        ids = read_panoptic_png(png_path, self.max_pixels)
        check_size(png_path, ids.shape, image.shape)
        instances = self._instances(ids, entry, png_path)
        return LabelledImage(ref.key, image, instances, (str(image_path), str(png_path)))

    def _instances(self, ids: IntArray, entry: _Entry, png_path: Path) -> Instances:
        listed = {s.segment_id for s in entry.segments}
        unlisted = sorted(set(np.unique(ids).tolist()) - listed - {0})
        if unlisted:
            raise DatasetError(
                png_path,
                f"segment id(s) {unlisted[:5]} are not in segments_info of image "
                f"{entry.image_id} in {self.annotations_path.name}",
            )
        masks = []
        for segment in entry.segments:
            mask = ids == segment.segment_id
            if not mask.any():
                raise DatasetError(
                    png_path,
                    f"segment {segment.segment_id} listed in {self.annotations_path.name} "
                    "is absent from the PNG",
                )
            masks.append(mask)
        return Instances(
            masks=np.stack(masks) if masks else np.zeros((0, *ids.shape), bool),
            class_ids=np.array([s.class_index for s in entry.segments], np.int64),
            keys=tuple(f"seg{s.segment_id}" for s in entry.segments),
            crowd=np.array([s.crowd for s in entry.segments], bool),
            ignore=ids == 0,
        )


def read_panoptic_png(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> IntArray:
    """Decode a panoptic PNG into (H, W) int64 segment ids (R + 256·G + 256²·B)."""
    img = open_image(read_bytes(path), path, max_pixels)
    if img.mode != "RGB":
        raise ImageError(path, f"expected an RGB panoptic PNG, got a {img.mode} image")
    rgb = np.asarray(img).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
