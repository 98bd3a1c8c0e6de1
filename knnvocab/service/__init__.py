"""The HTTP service (`knnvocab serve`): tenants' tokens, segment, reads, changes, jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from knnvocab.service.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # lazily: the app imports the engine (torch), and every CLI change imports
    # knnvocab.service.local to look for a running service that owns the store
    if name == "create_app":
        from knnvocab.service.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
