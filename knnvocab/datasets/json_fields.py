"""Reading annotation JSON files and their fields, with errors that name the file.

A malformed annotation file must never surface as a raw ``KeyError`` or
``JSONDecodeError``: every accessor here raises a one-line `DatasetError` that names the
file, the entry and what is wrong with it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TypeVar, cast

from knnvocab.errors import DatasetError

T = TypeVar("T")

_KIND_NAMES = {int: "an integer", str: "a string", list: "a list", dict: "an object"}


def read_json(path: Path, what: str = "annotation file") -> Any:
    """Parse a JSON file; a missing file or a syntax error is a DatasetError naming it."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(path, f"{what} not found") from None
    except IsADirectoryError:
        raise DatasetError(path, f"{what} is a directory") from None
    except OSError as exc:
        raise DatasetError(path, f"cannot read {what} ({exc.strerror or exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            path, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except UnicodeDecodeError:
        raise DatasetError(path, f"{what} is not UTF-8 text") from None
    except RecursionError:
        raise DatasetError(path, f"{what} is nested too deeply") from None


def get(obj: Any, key: str, kind: type[T], path: Path, where: str) -> T:
    """``obj[key]``, checked to be a ``kind`` (bool is not an int, 375.0 is)."""
    if not isinstance(obj, dict):
        raise DatasetError(path, f"{where} is not a JSON object")
    if key not in obj:
        raise DatasetError(path, f"{where} has no {key!r}")
    value = obj[key]
    if kind is int and isinstance(value, float) and value.is_integer():
        return cast(T, int(value))  # some exporters write sizes and ids as 375.0
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = _KIND_NAMES.get(kind, kind.__name__)
        raise DatasetError(path, f"{where}: {key!r} must be {expected}, got {type(value).__name__}")
    return value


def get_optional(obj: Any, key: str, kind: type[T], path: Path, where: str) -> T | None:
    """Like `get`, but an absent or null field gives None."""
    if isinstance(obj, dict) and obj.get(key) is None:
        return None
    return get(obj, key, kind, path, where)


def category(entry: Any, index: dict[int, int], path: Path, where: str) -> int:
    """The class index of ``entry``'s ``category_id``, which must be a known category."""
    cat_id = get(entry, "category_id", int, path, where)
    if cat_id not in index:
        raise DatasetError(path, f"{where}: unknown category_id {cat_id}")
    return index[cat_id]


def crowd(entry: dict[str, Any], path: Path, where: str) -> bool:
    """``entry``'s COCO ``iscrowd`` flag (absent: 0), which must be 0 or 1."""
    value = entry.get("iscrowd", 0)
    if value not in (0, 1):
        raise DatasetError(path, f"{where}: iscrowd must be 0 or 1, got {value!r}")
    return bool(value)


def number(value: Any, path: Path, where: str) -> float:
    """A finite JSON number as float."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DatasetError(path, f"{where}: expected a finite number, got {value!r}")
    return float(value)


def top_level(path: Path, doc: Any, keys: tuple[str, ...]) -> list[list[Any]]:
    """The top-level lists ``keys`` of a COCO-style document, in order."""
    if not isinstance(doc, dict):
        raise DatasetError(path, f"expected a JSON object at the top, got {type(doc).__name__}")
    missing = [k for k in keys if k not in doc]
    if missing:
        raise DatasetError(path, f"missing top-level key(s) {', '.join(map(repr, missing))}")
    return [get(doc, k, list, path, "the top-level object") for k in keys]


def unique_ids(path: Path, entries: list[Any], what: str) -> dict[int, Any]:
    """Map ``id`` -> entry for a list of JSON objects, refusing missing or duplicate ids."""
    out: dict[int, Any] = {}
    for i, entry in enumerate(entries):
        entry_id = get(entry, "id", int, path, f"{what}[{i}]")
        if entry_id in out:
            raise DatasetError(path, f"{what}[{i}]: duplicate id {entry_id}")
        out[entry_id] = entry
    return out
