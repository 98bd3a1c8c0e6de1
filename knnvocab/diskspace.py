"""Free disk space: checked before the embedded store grows, and ``ENOSPC`` turned into a
`DiskFullError` naming the path where knnvocab writes files itself.

The embedded store (qdrant-edge) keeps its files memory-mapped and sparse: a shard of a
few hundred points is ~166 MB apparent but under 1 MB allocated on ext4. When a page of
such a file is first touched and the file system is full, the kernel answers with SIGBUS:
the process dies at once (exit code 135) and Python cannot catch it. On tmpfs, opening a
shard touches most of its files (measured: 12 MB allocated before, 70 MB after a load), so
even opening one on a nearly full disk killed the process. So the store asks for room
before it opens or writes a shard: every sparse byte of the shard's files (what the
engine may still fill) plus `STORE_RESERVE` for the files it may make (a new 32 MiB WAL
segment; a new segment's preallocated files, ~12 MB on tmpfs) and what the step itself
writes. The check cannot see space another process takes after it; it makes the common
case — a disk filling up while knnvocab works — a clear error instead of a crash.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from knnvocab.errors import DiskFullError

MiB = 2**20
#: room kept free beyond the sparse bytes of a shard before the store writes or opens it
STORE_RESERVE = 48 * MiB
#: room an undo (points deleted or made live again) needs: WAL records and flag pages
UNDO_RESERVE = 4 * MiB
_FULL = (errno.ENOSPC, errno.EDQUOT)


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system holding ``path``
    (its nearest existing folder)."""
    for folder in (path, *path.parents):
        if folder.exists():
            st = os.statvfs(folder)
            return st.f_bavail * st.f_frsize
    return 0  # pragma: no cover - "/" always exists


def _stats(folder: Path) -> Iterator[os.stat_result]:
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                yield (Path(root) / name).stat()
            except OSError:  # removed meanwhile (the engine replaces segments)
                continue


def sparse_bytes(folder: Path) -> int:
    """Bytes the files under ``folder`` may still allocate without growing: apparent
    size minus allocated blocks, summed (what a memory-mapped sparse file fills later)."""
    return sum(max(0, st.st_size - st.st_blocks * 512) for st in _stats(folder))


def allocated_bytes(folder: Path) -> int:
    """Bytes the files under ``folder`` occupy on disk (allocated blocks)."""
    return sum(st.st_blocks * 512 for st in _stats(folder))


def require(path: Path, needed: int, doing: str) -> None:
    """Raise `DiskFullError` unless the file system of ``path`` has ``needed`` bytes free."""
    free = free_bytes(path)
    if free < needed:
        raise DiskFullError(path, free, needed, doing)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) says the disk or quota is full."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _FULL:
            return True
        if "No space left on device" in str(seen) or "database or disk is full" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextmanager
def writing(path: Path, doing: str) -> Iterator[None]:
    """Turn running out of space while writing under ``path`` into a `DiskFullError`."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        where = Path(getattr(exc, "filename", None) or path)
        raise DiskFullError(where, free_bytes(where), 0, doing) from None
