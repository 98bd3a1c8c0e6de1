"""Writing a segmentation: index PNG, colour PNG, overlay, JSON and COCO RLE.

Colours depend only on the class id, which is stable for a domain's lifetime, so a class
keeps its colour across versions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from knnvocab import rle as rle_codec
from knnvocab.engine.result import UNLABELLED, Segmentation
from knnvocab.types import ImageArray


def colour(class_id: int) -> tuple[int, int, int]:
    """The colour of a class id: Pascal VOC's bit-interleaved colour map, for any id."""
    r = g = b = 0
    cid = class_id
    for shift in range(7, -1, -1):
        r |= ((cid >> 0) & 1) << shift
        g |= ((cid >> 1) & 1) << shift
        b |= ((cid >> 2) & 1) << shift
        cid >>= 3
        if cid == 0:
            break
    return r, g, b


def palette(max_id: int) -> npt.NDArray[np.uint8]:
    """(max_id + 1, 3) uint8: row i is the colour of class id i (0 is black)."""
    return np.array([colour(i) for i in range(max_id + 1)], np.uint8).reshape(-1, 3)


@dataclass(frozen=True)
class Written:
    """The files written for one image."""

    index: Path
    colour: Path
    overlay: Path
    json: Path
    rle: Path | None = None

    def to_json(self) -> dict[str, str | None]:
        return {
            "index": self.index.name,
            "colour": self.colour.name,
            "overlay": self.overlay.name,
            "json": self.json.name,
            "rle": self.rle.name if self.rle else None,
        }


def index_png(seg: Segmentation, path: Path | BinaryIO) -> None:
    """Class ids as a PNG: uint8 (palette) when every id fits, uint16 when the
    vocabulary has ids above 255."""
    top = max(seg.class_ids, default=0)
    if top <= 255:
        img = Image.fromarray(seg.labels.astype(np.uint8), mode="P")
        img.putpalette(palette(255).flatten().tolist())
    else:
        img = Image.fromarray(seg.labels.astype(np.uint16))
    img.save(path, format="PNG", optimize=False)


def colour_image(seg: Segmentation) -> ImageArray:
    pal = palette(max(max(seg.class_ids, default=0), int(seg.labels.max(initial=0))))
    out: ImageArray = pal[seg.labels]
    return out


def overlay(seg: Segmentation, image: ImageArray, alpha: float = 0.5) -> Image.Image:
    """The photo with class colours blended in, segment edges, and class names."""
    colours = colour_image(seg).astype(np.float32)
    covered = (seg.labels != UNLABELLED)[..., None]
    blend = np.where(covered, (1 - alpha) * image + alpha * colours, image)
    edges = _edges(seg.segment_map)
    blend[edges] = 255
    img = Image.fromarray(blend.round().astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for label, (x, y) in _label_positions(seg).items():
        draw.text((x, y), label, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    return img


def _edges(ids: npt.NDArray[np.int32]) -> npt.NDArray[np.bool_]:
    edges = np.zeros(ids.shape, bool)
    edges[:-1] |= ids[:-1] != ids[1:]
    edges[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    return edges


def _label_positions(seg: Segmentation) -> dict[str, tuple[int, int]]:
    """One position per predicted class: the centre of its largest segment."""
    best: dict[str, tuple[int, tuple[int, int]]] = {}
    for s in seg.segments:
        x, y, w, h = s.bbox
        if s.area > best.get(s.label, (0, (0, 0)))[0]:
            best[s.label] = (s.area, (x + w // 2, y + h // 2))
    return {label: pos for label, (_, pos) in best.items()}


def rle_json(seg: Segmentation) -> list[dict[str, Any]]:
    """COCO RLE per segment, with its class id, label and score."""
    return [
        {
            "id": s.id,
            "category_id": s.class_id,
            "label": s.label,
            "score": round(s.score, 6),
            "segmentation": rle_codec.encode(seg.segment_map == s.id),
        }
        for s in seg.segments
    ]


def write(
    seg: Segmentation,
    image: ImageArray,
    out_dir: Path,
    stem: str,
    source: str,
    rle: bool = False,
    evidence: int = 5,
) -> Written:
    """Write every output of one image under ``out_dir`` as ``<stem>.*``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = Written(
        index=out_dir / f"{stem}.png",
        colour=out_dir / f"{stem}.colour.png",
        overlay=out_dir / f"{stem}.overlay.png",
        json=out_dir / f"{stem}.json",
        rle=out_dir / f"{stem}.rle.json" if rle else None,
    )
    index_png(seg, files.index)
    Image.fromarray(colour_image(seg)).save(files.colour)
    overlay(seg, image).save(files.overlay)
    if files.rle is not None:
        files.rle.write_text(json.dumps(rle_json(seg)))
    body = {"image": source, **seg.to_json(evidence), "files": files.to_json()}
    files.json.write_text(json.dumps(body, indent=1, ensure_ascii=False) + "\n")
    return files
