"""Running the real `knnvocab` command in-process (typer's CliRunner) with a test home."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from knnvocab.cli import app
from knnvocab.config import Settings
from knnvocab.embed.spec import EncoderSpec

Run = Callable[..., Result]


@pytest.fixture
def cli(settings: Settings) -> Run:
    """``cli("vocab", "log", "d")`` runs the command against the test settings."""
    env = {
        "KNNVOCAB_HOME": str(settings.home),
        "KNNVOCAB_DATABASE_URL": settings.database_url,
        "KNNVOCAB_USER": settings.user,
        "KNNVOCAB_QDRANT_URL": "",
    }

    def run(*args: str | Path) -> Result:
        return CliRunner().invoke(app, [str(a) for a in args], env=env)

    return run


@pytest.fixture
def model_args(tiny_model: EncoderSpec) -> list[str]:
    return ["--model", tiny_model.model, "--checkpoint", str(tiny_model.checkpoint)]
