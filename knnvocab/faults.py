"""Test-only fault injection: a process kills itself (SIGKILL, no clean-up) at a named
point when ``KNNVOCAB_FAULT`` names it, so a test can prove that running the same command
again finishes what the kill left. Off unless the setting is given; read through the
settings object like every other setting.

Points: ``import.after_points``, ``backup.after_domain``, ``reembed.after_batch``.
"""

from __future__ import annotations

import os
import signal

from knnvocab.config import Settings


def fault(settings: Settings, point: str) -> None:
    """Die at once if ``settings.fault`` names ``point``."""
    if settings.fault == point:
        os.kill(os.getpid(), signal.SIGKILL)


# Disk-full points of the fault matrix (README, "What knnvocab survives") -----------------


_filled: set[str] = set()


def fill_disk(settings: Settings, point: str) -> None:
    """Fill the file system of ``KNNVOCAB_HOME`` at ``point`` (once per process) if
    ``settings.fault`` is ``POINT:disk-full`` (nothing is left free) or ``POINT:disk-low``
    (only the room the embedded store keeps for undoing a change is left: the sparse bytes
    of its files and twice `UNDO_RESERVE`, so the next step that grows the store is
    refused). The space is taken by the file ``$KNNVOCAB_HOME/fault.filler``; a test frees
    it by deleting that file.

    Points: ``ingest.after_batch`` (an ingest has written a batch of points),
    ``export.after_points`` (an export has written its points, not its archive),
    ``backup.after_domain`` (``backup create`` has exported one domain).
    """
    mode = settings.fault.rpartition(":")[2] if settings.fault else ""
    if settings.fault != f"{point}:{mode}" or mode not in ("disk-full", "disk-low"):
        return
    if point in _filled:
        return
    _filled.add(point)
    from knnvocab.diskspace import UNDO_RESERVE, free_bytes, sparse_bytes

    leave = sparse_bytes(settings.vectors_dir) + 2 * UNDO_RESERVE if mode == "disk-low" else 0
    with (settings.home / "fault.filler").open("ab") as f:
        for chunk in (2**20, 4096):  # whole MiB while they fit, then pages
            while free_bytes(settings.home) - leave >= chunk:
                try:
                    os.posix_fallocate(f.fileno(), os.fstat(f.fileno()).st_size, chunk)
                except OSError:
                    break
