"""What every dataset reader provides, and the checks they share.

A reader lists its samples cheaply (paths validated, nothing decoded), then decodes one
sample at a time, so a dataset is streamed in a single pass. Every problem is a
`DatasetError` or `ImageError` naming the offending file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from knnvocab.errors import DatasetError
from knnvocab.imageio import DEFAULT_MAX_PIXELS
from knnvocab.types import LabelledImage

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class SampleRef:
    """A sample before decoding: its key and the files it will be read from.

    ``files`` are absolute paths inside the dataset root, image first; ``extra`` holds
    reader-specific data (e.g. a COCO image id).
    """

    key: str
    files: tuple[Path, ...]
    extra: Any = field(default=None, compare=False)


class DatasetReader(ABC):
    """Base of every format reader.

    Subclasses set ``format`` (the registry key, recorded in the catalog) and
    ``description``, read their class list in ``__init__`` and implement ``samples`` and
    ``load``.
    """

    format: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, root: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        root = Path(root).expanduser()
        if not root.exists():
            raise DatasetError(root, "dataset not found")
        self.root = root.resolve()
        self.max_pixels = max_pixels
        self.class_names: list[str] = []

    @abstractmethod
    def samples(self) -> list[SampleRef]:
        """All samples, sorted by key; raises DatasetError if there are none."""

    @abstractmethod
    def load(self, ref: SampleRef) -> LabelledImage:
        """Decode one sample (image and instance masks)."""

    def options(self) -> dict[str, Any]:
        """The reader's effective options, recorded with the dataset in the catalog."""
        return {}

    def metadata_files(self) -> list[Path]:
        """Files read once for the whole dataset (class lists, annotation JSON, splits)."""
        return []

    # shared helpers -------------------------------------------------------------------

    def inside(self, path: Path | str, what: str = "path") -> Path:
        """Resolve ``path`` (relative to the root unless absolute) and refuse escapes."""
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        resolved = candidate.resolve()
        if not resolved.is_relative_to(self.root):
            raise DatasetError(candidate, f"{what} escapes the dataset root {self.root}")
        return resolved

    def require_samples(self, refs: Sequence[SampleRef], where: Path) -> list[SampleRef]:
        if not refs:
            raise DatasetError(where, f"no samples found (empty {self.format} dataset)")
        keys = [r.key for r in refs]
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise DatasetError(where, f"two samples share the key {dup!r}")
        return sorted(refs, key=lambda r: r.key)

    def class_name(self, index: int, where: Path) -> str:
        if not 0 <= index < len(self.class_names):
            raise DatasetError(
                where,
                f"class id {index} is not in the class list ({len(self.class_names)} classes)",
            )
        return self.class_names[index]


def read_class_names(path: Path) -> list[str]:
    """Read a class list: line i names class index i; blank trailing lines are ignored."""
    if not path.is_file():
        raise DatasetError(path, "class names file not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"cannot read class names ({exc})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    names = [line.strip() for line in lines]
    if not names:
        raise DatasetError(path, "class names file is empty")
    for i, name in enumerate(names):
        if not name:
            raise DatasetError(path, f"line {i + 1} is blank: every class index needs a name")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise DatasetError(
                path, f"class {name!r} appears twice (lines {seen[name] + 1} and {i + 1})"
            )
        seen[name] = i
    return names


def image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
