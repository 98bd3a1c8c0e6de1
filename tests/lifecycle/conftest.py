"""Fixtures of the lifecycle tests: the CLI runner of tests/cli, and helpers that compare
what the catalog says about each version with what the store shows at it."""

from __future__ import annotations

from tests.cli.conftest import cli, model_args

__all__ = ["cli", "model_args"]
