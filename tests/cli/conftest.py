"""The CLI fixtures live in tests/conftest.py; re-exported here for older imports."""

from __future__ import annotations

from tests.conftest import Run, cli, model_args

__all__ = ["Run", "cli", "model_args"]
