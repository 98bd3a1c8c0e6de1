"""The HTTP service (`knnvocab serve`): tenants' tokens, segment, reads, changes, jobs.

`create_app` is imported on first use: the CLI reads `knnvocab.service.local` (is a
service running on this home?) before most commands, and must not load the app, and
with it torch, to find out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from knnvocab.service.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from knnvocab.service.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
