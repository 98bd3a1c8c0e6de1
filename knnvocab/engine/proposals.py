"""Mask proposals: a registry of methods, each turning an image into a proposal map.

A proposal map is (H, W) int32: the proposal id (1..P) of every pixel, 0 where no
proposal covers it. Methods: ``slic`` superpixels (the default), ``masks:DIR`` (a folder
of user-supplied masks, e.g. SAM output, as id PNGs or COCO RLE JSON, one per image,
same file stem) and ``gt`` (the ground-truth masks of a labelled dataset: the oracle).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from knnvocab import rle
from knnvocab.errors import ConfigError, InputError
from knnvocab.imageio import load_label_png
from knnvocab.types import ImageArray, Instances

ProposalMap = npt.NDArray[np.int32]
#: an image file (None: no file) -> its ground-truth instances in a labelled dataset
GroundTruthLookup = Callable[[Path | None], Instances]


class ProposalSource(Protocol):
    """Proposals for one image; ``path`` is the image file when there is one."""

    name: str

    def __call__(self, image: ImageArray, path: Path | None) -> ProposalMap: ...


def relabel(ids: npt.NDArray[np.integer[Any]]) -> ProposalMap:
    """Renumber the non-zero values of an id map to 1..P in order of first value."""
    values, inverse = np.unique(ids, return_inverse=True)
    out: ProposalMap = inverse.reshape(ids.shape).astype(np.int32)
    if values[0] != 0:
        out += 1
    return out


def from_masks(masks: npt.NDArray[np.bool_]) -> ProposalMap:
    """(N, H, W) bool masks -> a proposal map; later masks paint over earlier ones."""
    out = np.zeros(masks.shape[1:], np.int32)
    for i, mask in enumerate(masks, 1):
        out[mask] = i
    return relabel(out)


class Slic:
    """SLIC superpixels (scikit-image): every pixel in exactly one proposal.

    Large photos are clustered at a reduced size (at most ``max_pixels``) and the labels
    scaled back up by nearest neighbour: superpixels are coarser than the encoder's
    patches anyway, and SLIC's cost grows with the pixel count.
    """

    def __init__(
        self, n_segments: int = 128, compactness: float = 10.0, max_pixels: int = 250_000
    ) -> None:
        self.n_segments = n_segments
        self.compactness = compactness
        self.max_pixels = max_pixels
        self.name = "slic"

    def __call__(self, image: ImageArray, path: Path | None) -> ProposalMap:
        from PIL import Image
        from skimage.segmentation import slic

        height, width = image.shape[:2]
        scale = min(1.0, (self.max_pixels / (height * width)) ** 0.5)
        small = image
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
        labels = np.asarray(
            slic(
                small,
                n_segments=self.n_segments,
                compactness=self.compactness,
                start_label=1,
                channel_axis=-1,
            )
        )
        if labels.shape != (height, width):
            rows = np.arange(height) * labels.shape[0] // height
            cols = np.arange(width) * labels.shape[1] // width
            labels = labels[rows[:, None], cols[None, :]]
        return relabel(labels)


class MaskFolder:
    """User-supplied proposals: ``DIR/<image stem>.png`` (each pixel the id of its
    proposal, 0 for none) or ``DIR/<image stem>.json`` (a list of COCO RLE masks, or
    objects with a ``segmentation`` RLE; later masks paint over earlier ones)."""

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise InputError(folder, "proposal mask folder not found")
        self.folder = folder
        self.name = f"masks:{folder}"

    def __call__(self, image: ImageArray, path: Path | None) -> ProposalMap:
        if path is None:
            raise ConfigError("masks:DIR proposals need the image's file name")
        png, rle = self.folder / f"{path.stem}.png", self.folder / f"{path.stem}.json"
        if png.is_file():
            ids = load_label_png(png)
        elif rle.is_file():
            ids = _rle_file(rle, image.shape[:2])
        else:
            raise InputError(path, f"no proposal masks {png.name} or {rle.name} in {self.folder}")
        if ids.shape != image.shape[:2]:
            raise InputError(
                png if png.is_file() else rle,
                f"proposals are {ids.shape[1]}x{ids.shape[0]} but the image is "
                f"{image.shape[1]}x{image.shape[0]}",
            )
        return relabel(ids)


def _rle_file(path: Path, shape: tuple[int, ...]) -> npt.NDArray[np.int32]:
    """A JSON list of COCO RLE masks (or of objects with a ``segmentation`` RLE)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(path, f"cannot read proposal masks ({exc})") from None
    return _rle_masks(text, path, shape)


def _rle_masks(text: str | bytes, path: Path | str, shape: tuple[int, ...]) -> ProposalMap:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputError(path, f"cannot read proposal masks ({exc})") from None
    items = (
        data if isinstance(data, list) else data.get("masks") if isinstance(data, dict) else None
    )
    if not isinstance(items, list):
        raise InputError(path, "expected a JSON list of COCO RLE masks")
    size = (int(shape[0]), int(shape[1]))
    masks = [
        rle.decode(
            item.get("segmentation", item) if isinstance(item, dict) else item,
            size,
            path,
            f"mask {i}",
        )
        for i, item in enumerate(items)
    ]
    if not masks:
        return np.zeros(size, np.int32)
    return from_masks(np.stack(masks))


class GivenMasks:
    """Proposals sent with the image (the service's ``masks`` field): an id PNG (each pixel
    the id of its proposal, 0 for none) or a JSON list of COCO RLE masks."""

    name = "masks"

    def __init__(self, data: bytes, name: str, max_pixels: int) -> None:
        self.data, self.source, self.max_pixels = data, name, max_pixels

    def __call__(self, image: ImageArray, path: Path | None) -> ProposalMap:
        shape = image.shape[:2]
        if self.data.lstrip()[:1] in (b"[", b"{"):
            ids = _rle_masks(self.data, self.source, shape)
        else:
            ids = load_label_png(self.source, self.max_pixels, self.data)
        if ids.shape != shape:
            raise InputError(
                self.source,
                f"proposals are {ids.shape[1]}x{ids.shape[0]} but the image is "
                f"{shape[1]}x{shape[0]}",
            )
        return relabel(ids)


class GroundTruth:
    """The oracle: ground-truth instance masks of the image (from a labelled dataset)."""

    name = "gt"

    def __init__(self, lookup: GroundTruthLookup) -> None:
        self.lookup = lookup

    def __call__(self, image: ImageArray, path: Path | None) -> ProposalMap:
        instances = self.lookup(path)
        if instances.shape != image.shape[:2]:
            raise InputError(path or "image", "ground-truth masks do not match the image size")
        keep = ~instances.crowd
        return from_masks(instances.masks[keep])


@dataclass(frozen=True)
class ProposalOptions:
    """What a proposal builder may use: SLIC's parameters and, for ``gt``, the lookup of
    an image's ground-truth instances in a labelled dataset."""

    n_segments: int = 128
    compactness: float = 10.0
    ground_truth: GroundTruthLookup | None = None


#: builds a proposal source from the text after ``NAME:`` in the spec (None without a
#: colon) and the options
ProposalBuilder = Callable[[str | None, ProposalOptions], ProposalSource]


def _no_argument(name: str, argument: str | None) -> None:
    if argument is not None:
        raise ConfigError(f"{name} proposals take no argument (got {name}:{argument})")


def _slic(argument: str | None, options: ProposalOptions) -> ProposalSource:
    """SLIC superpixels (scikit-image); --n-segments, --compactness"""
    _no_argument("slic", argument)
    return Slic(options.n_segments, options.compactness)


def _masks(argument: str | None, options: ProposalOptions) -> ProposalSource:
    """your own masks (e.g. SAM), as masks:DIR: DIR/<stem>.png id maps (0 = none) or
    DIR/<stem>.json COCO RLE lists"""
    if argument is None:
        raise ConfigError("masks proposals need a folder: masks:DIR")
    return MaskFolder(Path(argument).expanduser())


def _gt(argument: str | None, options: ProposalOptions) -> ProposalSource:
    """ground-truth masks of a labelled dataset (the oracle, for evaluation)"""
    _no_argument("gt", argument)
    if options.ground_truth is None:
        raise ConfigError("gt proposals need a labelled dataset (--dataset PATH --format F)")
    return GroundTruth(options.ground_truth)


#: proposal method (the part of a spec before any ``:``) -> builder
PROPOSALS: dict[str, ProposalBuilder] = {"slic": _slic, "masks": _masks, "gt": _gt}


def list_proposals() -> dict[str, str]:
    """Proposal method -> one-line description, sorted by name."""
    return {name: " ".join((PROPOSALS[name].__doc__ or "").split()) for name in sorted(PROPOSALS)}


def make_proposals(
    spec: str,
    n_segments: int = 128,
    compactness: float = 10.0,
    ground_truth: GroundTruthLookup | None = None,
) -> ProposalSource:
    """The proposal source named by ``spec`` (``slic``, ``masks:DIR`` or ``gt``)."""
    name, colon, argument = spec.partition(":")
    build = PROPOSALS.get(name)
    if build is None:
        raise ConfigError(f"unknown proposals {spec!r} (known: {', '.join(PROPOSALS)})")
    options = ProposalOptions(n_segments, compactness, ground_truth)
    return build(argument if colon else None, options)
