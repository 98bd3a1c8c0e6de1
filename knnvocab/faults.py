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
