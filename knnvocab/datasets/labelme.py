"""labelme annotations: a folder (searched recursively) of labelme ``*.json`` files.

Each JSON names its image by ``imagePath`` (relative to the JSON) or embeds it as base64
``imageData``, which wins when present (as in labelme itself). Shapes are rasterised with
Pillow in file order, later shapes painting over earlier ones: labelme's own
``shapes_to_label`` semantics, so instance masks never overlap and agree with
``labelme2voc`` exports.

- ``polygon``, ``rectangle``, ``circle`` and ``mask`` shapes have an area and are drawn
  (outline included, like labelme).
- ``point``, ``points``, ``line`` and ``linestrip`` shapes have no area and are skipped:
  labelme's exporters draw them 5-10 px wide, which would invent pixels nobody labelled.
- Label ``__ignore__`` paints the ignore mask.
- Shapes sharing (label, group_id) with a non-null group_id form one instance (key
  ``group{gid}-{label}``); every other shape is its own instance (key ``shape{i}``, i its
  position in ``shapes``). An instance painted over entirely by later shapes is dropped.

Class list: the ``class_names`` option (labelme's ``labels.txt``: ``__ignore__`` lines are
dropped, ``_background_`` is an ordinary class), else the sorted labels of all the JSONs.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from knnvocab.datasets.base import DatasetReader, SampleRef, read_class_names
from knnvocab.datasets.json_fields import get, get_optional, number, read_json
from knnvocab.errors import DatasetError
from knnvocab.imageio import DEFAULT_MAX_PIXELS, load_rgb, open_image
from knnvocab.types import BoolArray, ImageArray, Instances, LabelledImage

IGNORE_LABEL = "__ignore__"
NO_AREA_SHAPES = frozenset({"point", "points", "line", "linestrip"})
_IGNORED = -2  # slot of __ignore__ pixels in the painter's map


@dataclass(frozen=True)
class _Scan:
    json_path: Path
    image: Path | None  # None: the image is embedded as imageData
    labels: tuple[str, ...]


class LabelmeReader(DatasetReader):
    format = "labelme"
    description = "a folder of labelme JSON files (polygon, rectangle, circle, mask shapes)"

    def __init__(
        self,
        root: Path,
        *,
        class_names: str | Path | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__(root, max_pixels=max_pixels)
        if not self.root.is_dir():
            raise DatasetError(self.root, "expected a folder of labelme JSON files")
        self._scans = [self._scan(self.inside(p, "JSON file")) for p in self.root.rglob("*.json")]
        self.class_names_path = (
            None if class_names is None else self.inside(class_names, "class names file")
        )
        found = {label for scan in self._scans for label in scan.labels} - {IGNORE_LABEL}
        if self.class_names_path is None:
            self.class_names = sorted(found)
        else:
            self.class_names = read_labelme_labels(self.class_names_path)
            self._check_labels()
        self.class_index = {name: i for i, name in enumerate(self.class_names)}

    def _check_labels(self) -> None:
        known = set(self.class_names) | {IGNORE_LABEL}
        for scan in sorted(self._scans, key=lambda s: s.json_path):
            for i, label in enumerate(scan.labels):
                if label not in known:
                    raise DatasetError(
                        scan.json_path,
                        f"shape {i} has label {label!r}, which is not in {self.class_names_path}",
                    )

    def _scan(self, json_path: Path) -> _Scan:
        doc = read_json(json_path, "labelme file")
        shapes = get(doc, "shapes", list, json_path, "the labelme file")
        labels = tuple(get(s, "label", str, json_path, f"shape {i}") for i, s in enumerate(shapes))
        if get_optional(doc, "imageData", str, json_path, "the labelme file"):
            return _Scan(json_path, None, labels)
        raw = get(doc, "imagePath", str, json_path, "the labelme file")
        # labelme on Windows writes backslashes
        image = self.inside(json_path.parent / raw.replace("\\", "/"), "imagePath")
        if not image.is_file():
            raise DatasetError(json_path, f"imagePath {raw!r} not found ({image})")
        return _Scan(json_path, image, labels)

    def options(self) -> dict[str, Any]:
        path = self.class_names_path
        return {"class_names": None if path is None else path.relative_to(self.root).as_posix()}

    def metadata_files(self) -> list[Path]:
        return [] if self.class_names_path is None else [self.class_names_path]

    def samples(self) -> list[SampleRef]:
        refs = []
        for scan in self._scans:
            key = PurePosixPath(scan.json_path.relative_to(self.root).as_posix()).with_suffix("")
            files = (scan.json_path,) if scan.image is None else (scan.image, scan.json_path)
            refs.append(SampleRef(key=key.as_posix(), files=files))
        return self.require_samples(refs, self.root)

    def load(self, ref: SampleRef) -> LabelledImage:
        json_path = ref.files[-1]
        doc = read_json(json_path, "labelme file")
        shapes = get(doc, "shapes", list, json_path, "the labelme file")
        image = self._load_image(doc, ref.files[0], json_path)
        instances = self._rasterise(shapes, (image.shape[0], image.shape[1]), json_path)
        return LabelledImage(ref.key, image, instances, tuple(str(f) for f in ref.files))

    def _load_image(self, doc: dict[str, Any], image_path: Path, json_path: Path) -> ImageArray:
        data = get_optional(doc, "imageData", str, json_path, "the labelme file")
        if data:
            image_path = json_path
            image = load_rgb(json_path, self.max_pixels, data=_b64(data, json_path, "imageData"))
        else:
            image = load_rgb(image_path, self.max_pixels)
        height = get_optional(doc, "imageHeight", int, json_path, "the labelme file")
        width = get_optional(doc, "imageWidth", int, json_path, "the labelme file")
        if height is not None and width is not None and (height, width) != image.shape[:2]:
            raise DatasetError(
                image_path,
                f"image is {image.shape[1]}x{image.shape[0]} but {json_path.name} says "
                f"{width}x{height}",
            )
        return image

    def _rasterise(self, shapes: list[Any], size: tuple[int, int], path: Path) -> Instances:
        owner = np.full(size, -1, np.int64)  # instance slot per pixel, painter's order
        slots: dict[str, int] = {}
        slot_classes: list[int] = []
        for i, shape in enumerate(shapes):
            mask = shape_mask(shape, size, path, f"shape {i}", self.max_pixels)
            if mask is None:
                continue
            label = get(shape, "label", str, path, f"shape {i}")
            if label == IGNORE_LABEL:
                owner[mask] = _IGNORED
                continue
            if label not in self.class_index:
                raise DatasetError(path, f"shape {i} has label {label!r}, not a known class")
            key = _instance_key(shape, i, label, path)
            if key not in slots:
                slots[key] = len(slots)
                slot_classes.append(self.class_index[label])
            owner[mask] = slots[key]
        kept = [(key, slot) for key, slot in slots.items() if (owner == slot).any()]
        return Instances(
            masks=np.stack([owner == s for _, s in kept]) if kept else np.zeros((0, *size), bool),
            class_ids=np.array([slot_classes[s] for _, s in kept], np.int64),
            keys=tuple(key for key, _ in kept),
            ignore=owner == _IGNORED,
        )


def _instance_key(shape: dict[str, Any], index: int, label: str, path: Path) -> str:
    group = get_optional(shape, "group_id", int, path, f"shape {index}")
    return f"shape{index}" if group is None else f"group{group}-{label}"


def read_labelme_labels(path: Path) -> list[str]:
    """A labelme ``labels.txt``: one class per line, ``__ignore__`` lines dropped."""
    names = [name for name in read_class_names(path) if name != IGNORE_LABEL]
    if not names:
        raise DatasetError(path, "class names file lists no class besides __ignore__")
    return names


def shape_mask(
    shape: Any, size: tuple[int, int], path: Path, where: str, max_pixels: int
) -> BoolArray | None:
    """(H, W) bool pixels of one labelme shape, or None for shapes without area."""
    kind = get_optional(shape, "shape_type", str, path, where) or "polygon"
    if kind in NO_AREA_SHAPES:
        return None
    points = _points(get(shape, "points", list, path, where), size, path, where)
    if kind == "mask":
        return _mask_shape(shape, points, size, path, where, max_pixels)
    canvas = Image.new("L", (size[1], size[0]), 0)
    draw = ImageDraw.Draw(canvas)
    if kind == "polygon":
        _need(points, 3, path, where, kind)
        draw.polygon(points, fill=1, outline=1)
    elif kind == "rectangle":
        _need(points, 2, path, where, kind)
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        draw.rectangle((min(xs), min(ys), max(xs), max(ys)), fill=1, outline=1)
    elif kind == "circle":
        _need(points, 2, path, where, kind)
        (cx, cy), (px, py) = points[:2]
        r = math.hypot(px - cx, py - cy)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=1, outline=1)
    else:
        raise DatasetError(path, f"{where}: unknown shape_type {kind!r}")
    return np.asarray(canvas) > 0


def _points(
    raw: list[Any], size: tuple[int, int], path: Path, where: str
) -> list[tuple[float, float]]:
    """Checked [x, y] points; far-away ones are refused (Pillow draws a circle of radius
    1e6 in ~40 s, so a corrupt coordinate would stall the reader)."""
    height, width = size
    points = []
    for point in raw:
        if not isinstance(point, list) or len(point) != 2:
            raise DatasetError(path, f"{where}: every point must be [x, y], got {point!r}")
        x, y = number(point[0], path, where), number(point[1], path, where)
        if not (-width <= x <= 2 * width and -height <= y <= 2 * height):
            raise DatasetError(
                path, f"{where}: point ({x:g}, {y:g}) lies far outside the {width}x{height} image"
            )
        points.append((x, y))
    return points


def _need(points: list[tuple[float, float]], n: int, path: Path, where: str, kind: str) -> None:
    if len(points) < n:
        raise DatasetError(path, f"{where}: a {kind} needs at least {n} points, got {len(points)}")


def _mask_shape(
    shape: dict[str, Any],
    points: list[tuple[float, float]],
    size: tuple[int, int],
    path: Path,
    where: str,
    max_pixels: int,
) -> BoolArray:
    """A ``mask`` shape: a base64 PNG of its box, whose top-left corner is ``points[0]``."""
    _need(points, 1, path, where, "mask")
    png = open_image(
        _b64(get(shape, "mask", str, path, where), path, f"{where} mask"), path, max_pixels
    )
    patch = np.asarray(png.convert("L")) > 0
    out = np.zeros(size, bool)
    x0, y0 = int(points[0][0]), int(points[0][1])
    top, left = max(y0, 0), max(x0, 0)
    bottom, right = min(y0 + patch.shape[0], size[0]), min(x0 + patch.shape[1], size[1])
    if bottom > top and right > left:
        out[top:bottom, left:right] = patch[top - y0 : bottom - y0, left - x0 : right - x0]
    return out


def _b64(text: str, path: Path, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DatasetError(path, f"{what} is not valid base64") from None
