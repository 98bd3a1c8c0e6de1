"""A workspace: the catalog, the vector store and the loaded encoders of one process."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from types import TracebackType
from typing import TYPE_CHECKING

from knnvocab.catalog.database import Catalog
from knnvocab.config import Settings, get_settings
from knnvocab.embed.spec import EncoderSpec
from knnvocab.errors import EncoderMismatchError
from knnvocab.store import VectorStore, open_store
from knnvocab.store.checked import CheckedStore

if TYPE_CHECKING:
    from knnvocab.catalog.models import Encoder
    from knnvocab.embed.openclip import OpenClipEncoder

log = logging.getLogger(__name__)

#: encoders a process keeps loaded (the least recently used one goes first)
MAX_ENCODERS = 4


class Workspace:
    """Opens what the settings point at, lazily: a `knnvocab vocab log` never loads torch
    or opens the vector store.

    Use as a context manager, or call `close`.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: VectorStore | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self._store = CheckedStore(store, lambda: self.catalog) if store is not None else None
        self._catalog = catalog
        self._encoders: OrderedDict[EncoderSpec, OpenClipEncoder] = OrderedDict()
        self._loading = threading.Lock()

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog(
                self.settings.database_url, auto_migrate=self.settings.auto_migrate
            )
        return self._catalog

    @property
    def store(self) -> CheckedStore:
        """The vector store, each collection checked against the catalog on first use."""
        if self._store is None:
            self._store = CheckedStore(open_store(self.settings), lambda: self.catalog)
        return self._store

    def encoder(self, spec: EncoderSpec) -> OpenClipEncoder:
        """Load (once per process, one thread at a time) the encoder ``spec`` describes.
        The ``MAX_ENCODERS`` used last stay warm (a domain's old versions may use older
        encoders after a re-embed)."""
        with self._loading:
            if spec not in self._encoders:
                from knnvocab.embed.openclip import OpenClipEncoder

                self._encoders[spec] = OpenClipEncoder.load(
                    spec, self.settings.cache_dir, self.settings.device
                )
                while len(self._encoders) > MAX_ENCODERS:
                    self._encoders.popitem(last=False)
            self._encoders.move_to_end(spec)
            return self._encoders[spec]

    def encoder_of(self, row: Encoder) -> OpenClipEncoder:
        """Load a catalog encoder and check its weights still give the same fingerprint."""
        from knnvocab.catalog.domains import encoder_spec

        encoder = self.encoder(encoder_spec(row))
        if encoder.info.fingerprint != row.fingerprint:
            raise EncoderMismatchError(
                f"encoder {encoder.info.spec.describe()} now has fingerprint "
                f"{encoder.info.fingerprint[:12]}, but the catalog recorded "
                f"{row.fingerprint[:12]}: its weights or config changed since it was first used"
            )
        return encoder

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except Exception as closing:  # the error that ended the block is the one to report
            log.info("closing the workspace after an error failed too: %s", closing)
