"""Versioned changes: the one mechanism every operation that changes a domain goes through
(see `knnvocab.changes.change`)."""

from knnvocab.changes.change import (
    Change,
    Opening,
    attach,
    close,
    head_encoder,
    retry_while_busy,
    undo_store,
    versioned_change,
)

__all__ = [
    "Change",
    "Opening",
    "attach",
    "close",
    "head_encoder",
    "retry_while_busy",
    "undo_store",
    "versioned_change",
]
