"""Errors a user can act on.

Every failure the library expects (bad input, a busy domain, a missing model, …) is a
`KnnvocabError`; the CLI prints its message on one line and exits with code 1. Anything
else reaching the user is a bug.
"""

from __future__ import annotations

from pathlib import Path


class KnnvocabError(Exception):
    """Base class: the message is complete, one line, and meant for the user."""


class ConfigError(KnnvocabError):
    """A setting or option is invalid."""


class InputError(KnnvocabError):
    """A file given by the user cannot be used; the message names the file and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class DatasetError(InputError):
    """A labelled dataset is malformed (layout, class list, a mask, an annotation)."""


class ImageError(InputError):
    """An image cannot be decoded, is truncated, or is too large."""


class NotFoundError(KnnvocabError):
    """A domain, version, class or dataset does not exist."""


class DomainNotFoundError(NotFoundError):
    """A domain does not exist (``domain``: the name asked for). The service answers it
    with a message of its own that lists nothing, so a tenant cannot learn which other
    domains exist."""

    def __init__(self, domain: str, message: str) -> None:
        self.domain = domain
        super().__init__(message)


class VersionStateError(KnnvocabError):
    """A version exists but cannot be used for this (pending, failed, rolled back, purged)."""


class DomainBusyError(KnnvocabError):
    """Another process holds the domain's pending version (its write lock)."""


class QuotaExceededError(KnnvocabError):
    """An ingest would take a domain past its quota (``max_instances``); nothing was
    embedded and no version was taken."""


class EncoderError(KnnvocabError):
    """An encoder cannot be loaded or is misconfigured."""


class EncoderMismatchError(EncoderError):
    """A domain is bound to another encoder than the one requested."""


class StoreError(KnnvocabError):
    """The vector store refused an operation or is unreachable."""


class StoreBusyError(StoreError):
    """The embedded vector store directory is open in another process."""


class StoreIdentityError(StoreError):
    """The vector store is not the one the catalog recorded: a collection it recorded is
    missing, carries another store's identity, or has none and does not match (``kind``:
    ``missing``, ``mismatch`` or ``unadopted``). Nothing was changed."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class StoreDamagedError(StoreError):
    """The embedded store cannot read or open a collection's shard (a file truncated,
    overwritten or missing); ``collection`` names it. Nothing is repaired: the shard's
    domains need a backup; other collections are not affected."""

    def __init__(self, collection: str, message: str) -> None:
        self.collection = collection
        super().__init__(message)


class CatalogError(KnnvocabError):
    """The catalog database is unreachable or not migrated."""


class DiskFullError(KnnvocabError):
    """The file system holding ``path`` has too little free space for the next step
    (``free`` and ``needed`` in bytes; ``needed`` 0 when the system itself said so).
    Checked before the embedded store grows, so nothing stored is damaged; the change
    under way is failed (or left pending for `doctor --repair`) and the same command
    succeeds once space is freed."""

    def __init__(self, path: Path | str, free: int, needed: int = 0, doing: str = "") -> None:
        self.path, self.free, self.needed = Path(path), free, needed
        what = f" to {doing}" if doing else ""
        room = (
            f"{_mib(free)} free, {_mib(needed)} needed{what}"
            if needed
            else f"no space left{what}, {_mib(free)} free"
        )
        super().__init__(
            f"{path}: the disk is full ({room}); nothing stored was damaged: free some "
            "space and run the command again"
        )


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


class UntrainedEncoderWarning(UserWarning):
    """Emitted whenever an encoder with random weights is loaded."""
