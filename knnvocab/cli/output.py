"""Terminal output: tables and JSON on stdout, progress, warnings and errors on stderr."""

from __future__ import annotations

import json
import logging
import warnings
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

if TYPE_CHECKING:
    from knnvocab.workspace import Workspace

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_json"):
        return value.to_json()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def print_json(data: Any) -> None:
    """JSON on stdout, nothing else (so it can be piped)."""
    print(json.dumps(data, indent=2, default=_default, ensure_ascii=False))


def workspace() -> Workspace:
    """The workspace the environment configures (``KNNVOCAB_*``), for a command to open
    with ``with workspace() as ws:``; imported on use, so a command loads only what it needs."""
    from knnvocab.config import Settings
    from knnvocab.workspace import Workspace

    return Workspace(Settings.from_env())


def user() -> str:
    """Who the CLI's changes are recorded as: ``KNNVOCAB_USER``, else the login name."""
    from knnvocab.config import Settings

    return Settings.from_env().user


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def setup_logging(verbose: bool) -> None:
    """Quiet third-party loggers (open_clip logs to the root logger) unless --verbose."""
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(logging.INFO if verbose else logging.CRITICAL)
    logging.getLogger("knnvocab").setLevel(logging.INFO if verbose else logging.WARNING)


def install_warning_banner() -> None:
    """Show knnvocab's own warnings (e.g. an untrained encoder) as a loud banner."""
    from knnvocab.errors import UntrainedEncoderWarning

    original = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, UntrainedEncoderWarning):
            err.print(f"[bold yellow]WARNING: {message}[/]")
        else:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show


class BarProgress:
    """The `Progress` protocol as a rich progress bar: images, instances, ETA."""

    def __init__(self, label: str, unit: str = "images", counted: str = "instances") -> None:
        self.label = label
        self.unit = unit
        self.counted = counted
        self.instances = 0
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def start(self, total: int, done: int) -> None:
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(self.unit + " · {task.fields[instances]} " + self.counted),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=total, completed=done, instances=0)

    def advance(self, images: int, instances: int) -> None:
        if self._bar is not None and self._task is not None:
            self.instances += instances
            self._bar.update(self._task, advance=images, instances=self.instances)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
