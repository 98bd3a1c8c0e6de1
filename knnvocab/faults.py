"""Test-only fault injection: a process kills itself (SIGKILL, no clean-up) at a named
point when ``KNNVOCAB_FAULT`` names it, so a test can prove that running the same command
again (or ``knnvocab doctor --repair``) finishes or undoes what the kill left. Off unless
the setting is given; read through the settings object like every other setting.

``KNNVOCAB_FAULT=POINT:pause`` instead holds the calling thread at ``POINT`` (once per
process): it creates the file ``$KNNVOCAB_HOME/fault.POINT.paused`` and waits until the
test deletes it (at most `PAUSE_LIMIT` seconds), so a test can act while an operation is
held at a known step, without racing a timer (the process's other threads, e.g. a
service's HTTP handlers, keep running). ``POINT:disk-full`` and ``POINT:disk-low`` fill
the home's file system at ``POINT`` instead (`fill_disk`, which lists its points).

Points:

- ``import.after_points``: an import (or a domain move, a backup restore) has written its
  points, the catalog has not recorded the domain.
- ``backup.after_domain``: ``backup create`` has exported one domain and recorded it in
  the partial manifest.
- ``reembed.after_batch``: a reembed has written its first batch of points.

Kill -9 points of the fault matrix (README, "What knnvocab survives"):

- ``change.before_publish``: any versioned change (ingest, retire, restore, purge, doctor's
  repair version, reembed) has written and flushed the store, its version is pending and
  nothing is published.
- ``rollback.after_undo``: a rollback (``vocab rollback``, or doctor rolling back a dead
  pending version) has undone the store, the version is still pending.
- ``doctor.after_repair``: ``doctor --repair`` has run one repair, before it audits it
  and before any further repair.
- ``token.before_commit``: ``token create`` has added the token and its audit event in
  its one transaction, which is not committed.
- ``backup.restore_after_domain``: ``backup restore`` has imported one domain, not the next.
"""

from __future__ import annotations

import os
import signal
import time

from knnvocab.config import Settings

#: the longest a paused point waits for the test to let it go on (seconds)
PAUSE_LIMIT = 300.0
_paused: set[str] = set()


def fault(settings: Settings, point: str) -> None:
    """Die at once if ``settings.fault`` names ``point``; pause there if it names
    ``point:pause``."""
    if settings.fault == point:
        os.kill(os.getpid(), signal.SIGKILL)
    elif settings.fault == f"{point}:pause" and point not in _paused:
        _paused.add(point)
        _pause(settings, point)


def _pause(settings: Settings, point: str) -> None:
    flag = settings.home / f"fault.{point}.paused"
    flag.parent.mkdir(parents=True, exist_ok=True)
    flag.touch()
    deadline = time.monotonic() + PAUSE_LIMIT
    while flag.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


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
