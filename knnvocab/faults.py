"""Test-only fault injection: a process kills itself (SIGKILL, no clean-up) at a named
point when ``KNNVOCAB_FAULT`` names it, so a test can prove that running the same command
again (or ``knnvocab doctor --repair``) finishes or undoes what the kill left. Off unless
the setting is given; read through the settings object like every other setting.

``KNNVOCAB_FAULT=POINT:pause`` instead holds the calling thread at ``POINT`` (once per
process): it creates the file ``$KNNVOCAB_HOME/fault.POINT.paused`` and waits until the
test deletes it (at most `PAUSE_LIMIT` seconds), so a test can act while an operation is
held at a known step, without racing a timer (the process's other threads, e.g. a
service's HTTP handlers, keep running).

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
