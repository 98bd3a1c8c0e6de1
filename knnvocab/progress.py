"""Progress reporting of long operations (ingest, segment, eval): a protocol and a no-op.

The library reports through a `Progress`; the CLI passes one that draws a bar.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Receives progress of a long operation (the CLI draws a bar)."""

    def start(self, total: int, done: int) -> None: ...

    def advance(self, images: int, instances: int) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    """A `Progress` that reports nothing: the default of every library call."""

    def start(self, total: int, done: int) -> None:
        pass

    def advance(self, images: int, instances: int) -> None:
        pass

    def finish(self) -> None:
        pass
