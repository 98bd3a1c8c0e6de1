"""Every command has help text, and the README documents every command."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from knnvocab.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


def commands() -> list[list[str]]:
    root = get_command(app)
    found: list[list[str]] = []

    def walk(cmd: object, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
        else:
            found.append(path)

    walk(root, [])
    return found


def test_the_command_tree_is_complete() -> None:
    names = {" ".join(c) for c in commands()}
    assert {"ingest", "info", "formats", "models", "vocab log", "vocab show", "db upgrade"} <= names


@pytest.mark.parametrize("path", commands(), ids=lambda p: " ".join(p))
def test_every_command_has_help(path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    cmd = get_command(app)
    for name in path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    assert cmd.help and len(cmd.help) > 10, f"{' '.join(path)} has no docstring"


@pytest.mark.parametrize("path", commands(), ids=lambda p: " ".join(p))
def test_readme_documents_every_command(path: list[str]) -> None:
    assert f"knnvocab {' '.join(path)}" in README.read_text(), (
        f"README lacks `knnvocab {' '.join(path)}`"
    )


def test_no_arguments_shows_help() -> None:
    result = CliRunner().invoke(app, [])
    assert "Usage:" in result.output
    listed = {line.split()[1] for line in result.output.splitlines() if line.startswith("│ ")}
    assert {path[0] for path in commands()} <= listed
