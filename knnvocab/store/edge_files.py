"""The embedded store's own files beside qdrant-edge's: metadata JSON (read, and written
atomically) and the lock file that makes a shard one process's at a time."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from knnvocab.diskspace import writing
from knnvocab.errors import StoreBusyError, StoreError


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path}: unreadable store metadata ({exc})") from None
    if not isinstance(data, dict):
        raise StoreError(f"{path}: unreadable store metadata (not a JSON object)")
    return data


def write_json(path: Path, data: dict[str, Any], exclusive: bool = False) -> None:
    """Write ``path`` atomically (temp file, fsync, rename); ``exclusive``: keep an
    existing file (another process created it first)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with writing(path.parent, f"write {path.name}"), tmp.open("w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if exclusive:
        with contextlib.suppress(FileExistsError):  # another process was first: keep its
            os.link(tmp, path)
        tmp.unlink()
    else:
        tmp.replace(path)


def lock_file(path: Path, wait: float, what: str) -> int:
    """Lock ``path`` for this process before qdrant-edge touches the shard beside it:
    opening a shard another process holds damages that process's files. Waits up to
    ``wait`` seconds; then a `StoreBusyError` names the holder. Returns the descriptor."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            if time.monotonic() >= deadline:
                holder = path.read_text().strip() or "another process"
                os.close(fd)
                raise StoreBusyError(
                    f"the embedded vector store's collection {what} ({path.parent}) is open "
                    f"in {holder}; the embedded store serves one process at a time — wait "
                    "for it (KNNVOCAB_STORE_WAIT=SECONDS waits), or use a Qdrant server "
                    "(KNNVOCAB_QDRANT_URL)"
                ) from None
            time.sleep(0.2)
    os.ftruncate(fd, 0)
    os.write(fd, f"process {os.getpid()} ({' '.join(sys.argv)[:200]})".encode())
    return fd
