"""Validated value types shared across the package.

Arrays are validated at construction (not with ``assert``), so a wrong shape fails where it
is made, with a message that says what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
ImageArray = npt.NDArray[np.uint8]


def _check(cond: bool, what: str, expected: str, got: object) -> None:
    if not cond:
        raise ValueError(f"{what}: expected {expected}, got {got}")


def check_image(image: ImageArray, what: str = "image") -> None:
    """Raise ValueError unless ``image`` is (H, W, 3) uint8 with H, W > 0."""
    shape = getattr(image, "shape", None)
    dtype = getattr(image, "dtype", None)
    _check(
        isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3,
        what,
        "(H, W, 3) uint8",
        f"{shape} {dtype}",
    )
    _check(image.dtype == np.uint8, what, "(H, W, 3) uint8", f"{shape} {dtype}")
    _check(image.shape[0] > 0 and image.shape[1] > 0, what, "a non-empty image", shape)


@dataclass(frozen=True, eq=False)
class Instances:
    """Labelled instance masks of one image.

    Attributes:
        masks: (N, H, W) bool, one mask per instance; masks may overlap.
        class_ids: (N,) int64, index into the owning dataset's class list.
        keys: N strings, each stable within the image (``"obj3"``, ``"ann1234"``,
            ``"class15"``), so a point id built from them is stable across runs.
        crowd: (N,) bool, True for crowd regions (COCO ``iscrowd``); excluded from ingest.
        ignore: (H, W) bool, pixels labelled void / ignore (no instance claims them).
    """

    masks: BoolArray
    class_ids: IntArray
    keys: tuple[str, ...]
    # None at construction means "no crowd" / "nothing ignored"; never None afterwards
    crowd: BoolArray = None  # type: ignore[assignment]
    ignore: BoolArray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        m = self.masks
        _check(
            isinstance(m, np.ndarray) and m.ndim == 3 and m.dtype == np.bool_,
            "Instances.masks",
            "(N, H, W) bool",
            f"{getattr(m, 'shape', type(m))} {getattr(m, 'dtype', '')}",
        )
        n, h, w = m.shape
        c = np.asarray(self.class_ids)
        _check(c.shape == (n,), "Instances.class_ids", f"({n},) int", c.shape)
        _check(np.issubdtype(c.dtype, np.integer), "Instances.class_ids", "integers", c.dtype)
        object.__setattr__(self, "class_ids", c.astype(np.int64, copy=False))
        _check(len(self.keys) == n, "Instances.keys", f"{n} keys", len(self.keys))
        _check(len(set(self.keys)) == n, "Instances.keys", "unique keys", self.keys)
        crowd = np.zeros(n, bool) if self.crowd is None else np.asarray(self.crowd, bool)
        _check(crowd.shape == (n,), "Instances.crowd", f"({n},) bool", crowd.shape)
        object.__setattr__(self, "crowd", crowd)
        ignore = np.zeros((h, w), bool) if self.ignore is None else self.ignore
        _check(
            isinstance(ignore, np.ndarray) and ignore.shape == (h, w) and ignore.dtype == np.bool_,
            "Instances.ignore",
            f"({h}, {w}) bool",
            f"{getattr(ignore, 'shape', None)} {getattr(ignore, 'dtype', None)}",
        )
        object.__setattr__(self, "ignore", ignore)

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the image the masks belong to."""
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    @property
    def areas(self) -> IntArray:
        """(N,) int64 pixel count of every mask."""
        areas: IntArray = self.masks.reshape(len(self), -1).sum(axis=1).astype(np.int64)
        return areas

    @classmethod
    def from_label_map(
        cls, label_map: npt.NDArray[np.integer], ignore_value: int | None = None
    ) -> Instances:
        """One instance per class present in an (H, W) integer class-index map.

        ``ignore_value`` pixels go to ``ignore``; keys are ``"class{index}"``.
        """
        _check(label_map.ndim == 2, "label_map", "(H, W) integers", label_map.shape)
        ignore = (
            label_map == ignore_value
            if ignore_value is not None
            else np.zeros(label_map.shape, bool)
        )
        values = [int(v) for v in np.unique(label_map[~ignore])]
        masks = (
            np.stack([label_map == v for v in values])
            if values
            else np.zeros((0, *label_map.shape), bool)
        )
        return cls(
            masks=masks,
            class_ids=np.array(values, np.int64),
            keys=tuple(f"class{v}" for v in values),
            ignore=ignore,
        )

    def semantic_map(self, ignore_index: int = -1) -> IntArray:
        """(H, W) int64 class index per pixel; later instances paint over earlier ones.

        Pixels no instance covers, ignored pixels and crowd regions get ``ignore_index``.
        """
        out = np.full(self.shape, ignore_index, np.int64)
        for mask, cid, crowd in zip(self.masks, self.class_ids, self.crowd, strict=True):
            if not crowd:
                out[mask] = cid
        out[self.ignore] = ignore_index
        return out


@dataclass(frozen=True, eq=False)
class LabelledImage:
    """One image of a labelled dataset.

    Attributes:
        key: image key, unique within the dataset (its path relative to the image folder,
            without extension, POSIX separators).
        image: (H, W, 3) uint8 RGB, EXIF orientation applied.
        instances: its labelled masks, at the image's (H, W).
        files: the dataset files this sample was read from (image, masks, …).
    """

    key: str
    image: ImageArray
    instances: Instances
    files: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_image(self.image, f"image {self.key!r}")
        _check(
            self.instances.shape == self.image.shape[:2],
            f"masks of {self.key!r}",
            f"the image size {self.image.shape[:2]}",
            self.instances.shape,
        )
