"""What an ingest read: the dataset's files, a cheap manifest hash, and a content hash."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from knnvocab.datasets.base import DatasetReader, SampleRef


def manifest_sha256(reader: DatasetReader, refs: Sequence[SampleRef]) -> str:
    """sha256 over (relative path, size, mtime) of every file: detects a changed dataset
    without reading it (used to refuse resuming onto different data)."""
    digest = hashlib.sha256(f"{reader.format}\n".encode())
    for path in dataset_files(reader, refs):
        st = path.stat()
        digest.update(f"{relative(reader, path)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def dataset_files(reader: DatasetReader, refs: Sequence[SampleRef]) -> list[Path]:
    files = dict.fromkeys(reader.metadata_files())
    for ref in refs:
        files.update(dict.fromkeys(ref.files))
    return list(files)


def relative(reader: DatasetReader, path: Path) -> str:
    try:
        return path.relative_to(reader.root).as_posix()
    except ValueError:
        return path.as_posix()


class ContentHasher:
    """sha256 of the dataset's bytes: each file hashed once, combined in path order."""

    def __init__(self, reader: DatasetReader) -> None:
        self.reader = reader
        self.files: dict[str, str] = {}
        self.bytes = 0

    def add(self, paths: Sequence[Path]) -> None:
        for path in paths:
            key = relative(self.reader, path)
            if key in self.files:
                continue
            digest = hashlib.sha256()
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
                    self.bytes += len(block)
            self.files[key] = digest.hexdigest()

    def hexdigest(self) -> str:
        digest = hashlib.sha256()
        for key in sorted(self.files):
            digest.update(f"{key}|{self.files[key]}\n".encode())
        return digest.hexdigest()
