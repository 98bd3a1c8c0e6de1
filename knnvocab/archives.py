"""Unpacking an uploaded dataset archive (zip, or tar plain/gz/bz2/xz) safely.

Archives come from tenants and are hostile until checked. The whole member list is checked
before anything is written: no absolute paths, ``..``, drive letters, backslashes or control
characters, no links or special members, no two members on one path, and the declared sizes
within `ArchiveLimits`. Files are then streamed out in 1 MiB chunks while the bytes that
really come out are counted, into a hidden sibling of the destination that is renamed into
place once everything is out and removed on any failure. Archive permissions, owners and
times are ignored: files are 0o644, folders 0o755.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal, Protocol

from knnvocab.errors import InputError

_CHUNK = 1 << 20
#: room for one tar header (pax and GNU long-name records included) past the previous
#: member's data; a larger header is refused as a bomb
_HEADER_ALLOWANCE = 1 << 20
#: below this many unpacked bytes no archive is refused for its ratio (a blank mask in a
#: tiny archive is no bomb)
_RATIO_FLOOR = 1 << 20
_ZIP_METHODS = frozenset(
    {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
)
_DRIVE = re.compile(r"[A-Za-z]:")
#: what readers and decompressors raise on truncated or corrupt input
_CORRUPT = (
    zipfile.BadZipFile,
    tarfile.TarError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    OSError,
    UnicodeDecodeError,
    NotImplementedError,
)

_Kind = Literal["file", "dir", "link", "special"]


@dataclass(frozen=True)
class ArchiveLimits:
    """What one archive may hold: members (files, folders, anything), bytes once unpacked
    (the sum of the declared file sizes) and that sum over the archive's size on disk."""

    max_members: int = 100_000
    max_total_bytes: int = 8 * 2**30
    max_ratio: float = 200.0

    def __post_init__(self) -> None:
        if self.max_members < 1 or self.max_total_bytes < 1 or not self.max_ratio > 0:
            raise ValueError(f"archive limits must be positive, got {self}")


DEFAULT_LIMITS = ArchiveLimits()


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


class _StreamOverflowError(Exception):
    """A decompressed tar stream ran past what its headers allow."""


class _WriteError(Exception):
    """Writing to our own disk failed: re-raised as the OSError, never blamed on the archive."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class _Entry:
    index: int  # position in the archive's member order
    parts: tuple[str, ...]  # the relative path, one item per component
    size: int  # bytes its header declares


@dataclass
class _Plan:
    """The checked member list, built one member at a time in archive order."""

    name: str
    limits: ArchiveLimits
    archive_bytes: int
    members: int = 0
    total: int = 0
    files: dict[int, _Entry] = field(default_factory=dict)
    paths: dict[tuple[str, ...], bool] = field(default_factory=dict)  # path -> is a folder

    def refuse(self, member: str, reason: str) -> InputError:
        return InputError(self.name, f"member {_show(member)}: {reason}")

    def add(self, index: int, member: str, kind: _Kind, size: int) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise InputError(self.name, f"more than {self.limits.max_members:,} members")
        if kind == "link":
            raise self.refuse(member, "links are not accepted")
        if kind == "special":
            raise self.refuse(
                member, "special members (devices, fifos, sparse files, …) are not accepted"
            )
        parts = tuple(part for part in member.split("/") if part not in ("", "."))
        problem = _name_problem(member, parts) or ("negative size" if size < 0 else None)
        if problem is not None:
            raise self.refuse(member, problem)
        if not parts:
            if kind == "dir":
                return  # "./": the destination itself
            raise self.refuse(member, "empty path")
        self._claim(member, parts, kind == "dir")
        if kind == "file":
            self.files[index] = _Entry(index, parts, size)
            self.total += size
            self._check_total()

    def _claim(self, member: str, parts: tuple[str, ...], is_dir: bool) -> None:
        for depth in range(1, len(parts)):
            if not self.paths.setdefault(parts[:depth], True):
                raise self.refuse(member, "a folder on its path is a file in the archive")
        previous = self.paths.get(parts)
        if previous is not None and not (previous and is_dir):
            raise self.refuse(member, "another member has the same path")
        self.paths[parts] = is_dir

    def _check_total(self) -> None:
        limits = self.limits
        if self.total > limits.max_total_bytes:
            raise self.too_large()
        if self.total > _RATIO_FLOOR and self.total > limits.max_ratio * self.archive_bytes:
            raise InputError(
                self.name,
                f"would expand more than {limits.max_ratio:g} times its "
                f"{self.archive_bytes:,} bytes (possible archive bomb)",
            )

    def too_large(self) -> InputError:
        return InputError(
            self.name, f"files total more than {self.limits.max_total_bytes:,} bytes unpacked"
        )

    def root(self) -> str | None:
        """The single top-level folder, if the archive holds nothing else; refuses no files."""
        if not self.files:
            raise InputError(self.name, "archive holds no files")
        tops = {parts[0] for parts in self.paths}
        top = tops.pop()
        return top if not tops and self.paths[(top,)] else None


def _show(member: str) -> str:
    return repr(member if len(member) <= 100 else member[:97] + "...")


def _name_problem(member: str, parts: tuple[str, ...]) -> str | None:
    if "\\" in member:
        return "backslashes are not accepted in paths"
    if any(ord(char) < 32 or ord(char) == 127 for char in member):
        return "control characters are not accepted in paths"
    if member.startswith("/"):
        return "absolute paths are not accepted"
    if parts and _DRIVE.match(parts[0]):
        return "drive letters are not accepted"
    if ".." in parts:
        return "'..' components are not accepted"
    if any(len(os.fsencode(part)) > 255 for part in parts):
        return "a path component is longer than 255 bytes"
    return None


def _corrupt(name: str, problem: BaseException | str) -> InputError:
    detail = problem if isinstance(problem, str) else f"{type(problem).__name__}: {problem}"
    detail = " ".join(detail.split())
    return InputError(name, f"truncated or corrupt archive ({detail[:200]})")


class _Writer:
    """Writes checked files under ``root``, counting the bytes that really come out."""

    def __init__(self, root: Path, plan: _Plan) -> None:
        self.root = root
        self.resolved = root.resolve()
        self.plan = plan
        self.written = 0

    def make_folders(self) -> None:
        # sorted tuples put every folder after its parent
        for parts in sorted(parts for parts, is_dir in self.plan.paths.items() if is_dir):
            path = self.root.joinpath(*parts)
            try:
                path.mkdir()
                path.chmod(0o755)
            except OSError as exc:
                raise _WriteError(exc) from None

    def copy(self, source: _Readable, entry: _Entry, member: str) -> None:
        target = self.root.joinpath(*entry.parts)
        if not target.resolve().is_relative_to(self.resolved):
            raise self.plan.refuse(member, "resolves outside the destination folder")
        written = 0
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as out:
                os.fchmod(out.fileno(), 0o644)
                while chunk := self._read(source, entry, member, written):
                    written += len(chunk)
                    out.write(chunk)
        except OSError as exc:
            raise _WriteError(exc) from None
        if written < entry.size:
            raise self.plan.refuse(
                member, f"holds only {written:,} of the {entry.size:,} bytes its header declares"
            )

    def _read(self, source: _Readable, entry: _Entry, member: str, written: int) -> bytes:
        try:
            chunk = source.read(_CHUNK)
        except _CORRUPT as exc:
            raise _corrupt(self.plan.name, exc) from None
        self.written += len(chunk)
        if written + len(chunk) > entry.size:
            raise self.plan.refuse(
                member, f"holds more than the {entry.size:,} bytes its header declares"
            )
        if self.written > self.plan.limits.max_total_bytes:
            raise self.plan.too_large()
        return chunk


# zip


def _zip_kind(info: zipfile.ZipInfo) -> _Kind:
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "link"
    if info.is_dir() or stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_IFMT(mode) in (0, stat.S_IFREG) else "special"


def _plan_zip(source: Path, plan: _Plan) -> None:
    with zipfile.ZipFile(source) as archive:
        for index, info in enumerate(archive.infolist()):
            if info.flag_bits & 0x1:
                raise plan.refuse(info.filename, "encrypted members are not accepted")
            if info.compress_type not in _ZIP_METHODS:
                raise plan.refuse(
                    info.filename, f"compression method {info.compress_type} is not supported"
                )
            plan.add(index, info.filename, _zip_kind(info), info.file_size)


def _write_zip(source: Path, plan: _Plan, writer: _Writer) -> None:
    with zipfile.ZipFile(source) as archive:
        infos = archive.infolist()
        for entry in plan.files.values():
            info = infos[entry.index]
            with archive.open(info) as member:
                writer.copy(member, entry, info.filename)


# tar


class _BoundedReader(io.RawIOBase):
    """A decompressed stream that refuses to yield more than ``limit`` bytes in all."""

    def __init__(self, raw: _Readable, limit: int) -> None:
        super().__init__()
        self.raw = raw
        self.limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        room = self.limit - self.count + 1  # one byte more tells "past the limit" from "at it"
        data = self.raw.read(room if size is None or size < 0 else min(size, room))
        self.count += len(data)
        if self.count > self.limit:
            raise _StreamOverflowError
        return data


#: gzip, bzip2 and xz, by their magic bytes
_OPENERS: tuple[tuple[bytes, Callable[[IO[bytes]], _Readable]], ...] = (
    (b"\x1f\x8b", lambda raw: gzip.GzipFile(fileobj=raw, mode="rb")),
    (b"BZh", bz2.BZ2File),
    (b"\xfd7zXZ\x00", lzma.LZMAFile),
)


def _decompressor(raw: IO[bytes]) -> Callable[[IO[bytes]], _Readable] | None:
    """How to decompress ``raw``, judged by its first bytes; None if it is not compressed."""
    head = raw.read(6)
    raw.seek(0)
    return next((opener for magic, opener in _OPENERS if head.startswith(magic)), None)


@contextmanager
def _open_tar(source: Path, limit: int) -> Iterator[tuple[tarfile.TarFile, _BoundedReader]]:
    with ExitStack() as stack:
        raw = stack.enter_context(source.open("rb"))
        opener = _decompressor(raw)
        stream = raw if opener is None else opener(raw)
        stack.callback(stream.close)
        reader = _BoundedReader(stream, limit)
        # stream mode ("r|") reads strictly forward, through the bounded reader
        yield stack.enter_context(tarfile.open(fileobj=reader, mode="r|")), reader


def _tar_members(
    tar: tarfile.TarFile, reader: _BoundedReader, cap: int
) -> Iterator[tuple[tarfile.TarInfo, int]]:
    """Each member with the offset where its data ends, letting the stream run only to
    that offset plus one header's allowance (so no header can be a bomb)."""
    while (member := tar.next()) is not None:
        end = member.offset_data + (-(-member.size // 512) * 512 if member.isreg() else 0)
        reader.limit = min(cap, max(end, 0) + _HEADER_ALLOWANCE)
        yield member, end


def _tar_kind(member: tarfile.TarInfo) -> _Kind:
    if member.issym() or member.islnk():
        return "link"
    if member.isdir():
        return "dir"
    return "file" if member.isreg() and not member.issparse() else "special"


def _stream_cap(plan: _Plan) -> int:
    return int(plan.limits.max_ratio * plan.archive_bytes) + _RATIO_FLOOR + _HEADER_ALLOWANCE


def _plan_tar(source: Path, plan: _Plan) -> None:
    cap = _stream_cap(plan)
    with _open_tar(source, min(cap, _HEADER_ALLOWANCE)) as (tar, reader):
        last_end = 0
        for index, (member, end) in enumerate(_tar_members(tar, reader, cap)):
            plan.add(index, member.name, _tar_kind(member), member.size)
            last_end = end
        reader.limit = cap
        while reader.read(_CHUNK):
            pass  # to the end of the stream, so a decompressor checks its trailer
        if reader.count < last_end + tarfile.BLOCKSIZE:
            raise _corrupt(plan.name, "it ends before the end-of-archive marker")


def _write_tar(source: Path, plan: _Plan, writer: _Writer) -> None:
    cap = _stream_cap(plan)
    last = max(plan.files)
    with _open_tar(source, min(cap, _HEADER_ALLOWANCE)) as (tar, reader):
        for index, (member, _end) in enumerate(_tar_members(tar, reader, cap)):
            entry = plan.files.get(index)
            if entry is not None:
                data = tar.extractfile(member)
                if data is None:
                    raise _corrupt(plan.name, f"member {_show(member.name)} has no data")
                writer.copy(data, entry, member.name)
            if index == last:
                return


# detection and the whole


def _is_tar(source: Path, name: str) -> bool:
    try:
        with _open_tar(source, _HEADER_ALLOWANCE):
            return True
    except tarfile.ReadError:
        return False
    except _StreamOverflowError:
        return True  # a first header this large is refused as a bomb while planning
    except _CORRUPT as exc:
        with source.open("rb") as raw:
            if _decompressor(raw) is None:
                return False
        raise _corrupt(name, exc) from None


def _kind(source: Path, name: str) -> Literal["zip", "tar"]:
    if _is_tar(source, name):
        return "tar"
    if zipfile.is_zipfile(source):
        return "zip"
    with source.open("rb") as raw:
        if raw.read(4) == b"PK\x03\x04":
            raise _corrupt(name, "no zip central directory")
    raise InputError(name, "not a zip or tar archive")


@contextmanager
def _reading(name: str) -> Iterator[None]:
    try:
        yield
    except _StreamOverflowError:
        raise InputError(
            name, "tar headers expand far past their declared sizes (possible archive bomb)"
        ) from None
    except _WriteError as exc:
        raise exc.error from None
    except _CORRUPT as exc:
        raise _corrupt(name, exc) from None


def extract_archive(
    source: Path, dest: Path, name: str | None = None, limits: ArchiveLimits = DEFAULT_LIMITS
) -> Path:
    """Unpack the zip or tar archive at ``source`` into the new folder ``dest`` (must not
    exist yet) and return the dataset root: ``dest`` itself, or its single top-level folder
    if the archive holds exactly one folder and nothing else. ``name`` is what errors call
    the archive (e.g. the uploaded filename), default ``source.name``.

    The kind is read from the content (tar may be gzip, bzip2 or xz compressed). Anything
    refused, truncated or corrupt raises `InputError` ("name: reason") and leaves no ``dest``
    and no partial folder behind; an existing ``dest`` is a ValueError.
    """
    label = source.name if name is None else name
    if dest.exists() or dest.is_symlink():
        raise ValueError(f"{dest} already exists; extract_archive needs a new folder")
    archive_bytes = source.stat().st_size  # a missing source is our error, not the archive's
    with _reading(label):
        kind = _kind(source, label)
        plan = _Plan(label, limits, archive_bytes)
        (_plan_zip if kind == "zip" else _plan_tar)(source, plan)
    root = plan.root()
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        partial.chmod(0o755)
        with _reading(label):
            writer = _Writer(partial, plan)
            writer.make_folders()
            (_write_zip if kind == "zip" else _write_tar)(source, plan, writer)
        partial.rename(dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return dest / root if root is not None else dest
