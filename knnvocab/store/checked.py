"""The store a workspace uses: the configured `VectorStore`, checked against the catalog.

Before a process first touches a collection it checks that the store is the one the
catalog recorded (DESIGN.md, "Store identity"): a collection the catalog wrote to must
exist and carry the identity recorded when it was created. A wrong setting — an empty
folder as ``KNNVOCAB_HOME``, another deployment's store or catalog — is refused with a
`StoreIdentityError` before anything is read or changed, so `doctor --repair` can never
"repair" a good catalog against the wrong store.

A collection made before stores had identities is adopted automatically only when every
domain's points visible at its head match the catalog's counts; otherwise
`knnvocab store adopt` does it explicitly (`knnvocab.store.adoption`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from knnvocab.catalog import audit
from knnvocab.catalog.database import safe_url
from knnvocab.catalog.stores import has_versions, record_identity, recorded_identity
from knnvocab.errors import StoreIdentityError
from knnvocab.store.base import CollectionState, Hit, PointFilter, StoredPoint, VectorStore

if TYPE_CHECKING:
    from knnvocab.catalog.database import Catalog

#: who the audit log names for an automatic adoption (no user asked for it)
AUTOMATIC = "knnvocab (automatic)"


class CheckedStore:
    """A `VectorStore` that checks each collection's identity on first use."""

    def __init__(self, inner: VectorStore, catalog: Callable[[], Catalog]) -> None:
        self.inner = inner
        self._catalog = catalog
        self._checked: set[str] = set()

    @property
    def backend(self) -> str:
        return self.inner.backend

    @property
    def location(self) -> str:
        return self.inner.location

    @property
    def catalog(self) -> Catalog:
        return self._catalog()

    def __getattr__(self, name: str) -> Any:  # backend extras (indexed_vectors, client, …)
        return getattr(self.inner, name)

    # the identity check ------------------------------------------------------------

    def _where(self) -> str:
        return f"the {self.inner.backend} store at {self.inner.location}"

    def _catalog_name(self) -> str:
        return f"the catalog {safe_url(self.catalog.url)}"

    def missing(self, collection: str, recorded: str | None) -> StoreIdentityError:
        seen = f" (recorded with store identity {recorded})" if recorded else ""
        return StoreIdentityError(
            "missing",
            f"vector collection {collection} is missing from {self._where()}, but "
            f"{self._catalog_name()} has versions in it{seen}: wrong KNNVOCAB_HOME or "
            "KNNVOCAB_QDRANT_URL? Nothing was changed",
        )

    def check(self, collection: str) -> None:
        """Refuse (StoreIdentityError) unless ``collection`` is the catalog's; adopt a
        pre-identity collection whose counts match. Checked once per process."""
        if collection in self._checked:
            return
        with self.catalog.session() as s:
            row = recorded_identity(s, collection)
            recorded = row.identity if row is not None else None
            used = has_versions(s, collection)
        state = self.inner.describe(collection)
        if state is None:
            if recorded is not None or used:
                raise self.missing(collection, recorded)
            return  # nothing recorded, nothing there: reads find nothing, writes create it
        if recorded is not None and state.identity != recorded:
            raise StoreIdentityError(
                "mismatch",
                f"vector collection {collection} in {self._where()} has store identity "
                f"{state.identity or 'none'}, but {self._catalog_name()} recorded {recorded}: "
                "another deployment's store? Nothing was changed",
            )
        if recorded is None:
            self._adopt_or_refuse(collection, state)
        self._checked.add(collection)

    def _adopt_or_refuse(self, collection: str, state: CollectionState) -> None:
        from knnvocab.store.adoption import survey

        found = survey(self, collection)
        if state.identity is None and found.matches:
            identity = self.inner.adopt(collection)
            self.record(collection, identity, "adopted", AUTOMATIC, found.to_json())
            return
        whose = (
            f"has store identity {state.identity}, which {self._catalog_name()} never recorded"
            if state.identity
            else f"has no store identity and does not match {self._catalog_name()}"
        )
        raise StoreIdentityError(
            "unadopted",
            f"vector collection {collection} in {self._where()} {whose} ({found.describe()}); "
            "if this is the right store, `knnvocab store adopt` records it. Nothing was changed",
        )

    def record(
        self, collection: str, identity: str, how: str, actor: str, detail: dict[str, Any]
    ) -> None:
        """Record ``collection``'s identity in the catalog (audited unless just created)."""
        with self.catalog.session() as s:
            record_identity(s, collection, identity, self.backend, self.location, how)
            if how != "created":
                audit.record(
                    s,
                    "store.adopt",
                    actor,
                    detail={"collection": collection, "identity": identity, **detail},
                )
        self._checked.add(collection)

    # VectorStore -------------------------------------------------------------------

    def ensure_collection(self, collection: str, dim: int) -> None:
        """Create the collection with this store's identity and record it; an existing
        one is checked first."""
        if self.inner.describe(collection) is not None:
            self.check(collection)
            self.inner.ensure_collection(collection, dim)
            return
        with self.catalog.session() as s:
            row = recorded_identity(s, collection)
            if row is not None or has_versions(s, collection):
                raise self.missing(collection, row.identity if row else None)
        self.inner.ensure_collection(collection, dim)
        state = self.inner.describe(collection)
        if state is None or state.identity is None:
            raise StoreIdentityError("missing", f"{self._where()} did not create {collection}")
        self.record(collection, state.identity, "created", AUTOMATIC, {})

    def describe(self, collection: str) -> CollectionState | None:
        return self.inner.describe(collection)

    def adopt(self, collection: str) -> str:
        return self.inner.adopt(collection)

    def open_domain(self, collection: str, domain: str) -> None:
        self.check(collection)
        self.inner.open_domain(collection, domain)

    def insert(self, collection: str, domain: str, points: Sequence[StoredPoint]) -> None:
        self.check(collection)
        self.inner.insert(collection, domain, points)

    def existing(self, collection: str, domain: str, ids: Sequence[str]) -> set[str]:
        self.check(collection)
        return self.inner.existing(collection, domain, ids)

    def search(
        self,
        collection: str,
        flt: PointFilter,
        vectors: np.ndarray,
        k: int,
        exact: bool = False,
        with_payload: bool = True,
    ) -> list[list[Hit]]:
        self.check(collection)
        return self.inner.search(collection, flt, vectors, k, exact, with_payload)

    def count(self, collection: str, flt: PointFilter) -> int:
        self.check(collection)
        return self.inner.count(collection, flt)

    def counts_by(self, collection: str, flt: PointFilter, key: str) -> dict[Any, int]:
        self.check(collection)
        return self.inner.counts_by(collection, flt, key)

    def delete(self, collection: str, flt: PointFilter) -> None:
        self.check(collection)
        self.inner.delete(collection, flt)

    def set_removed_in(self, collection: str, flt: PointFilter, version: int | None) -> None:
        self.check(collection)
        self.inner.set_removed_in(collection, flt, version)

    def domains(self, collection: str) -> list[str]:
        self.check(collection)
        return self.inner.domains(collection)

    def drop_domain(self, collection: str, domain: str) -> None:
        self.check(collection)
        self.inner.drop_domain(collection, domain)

    def scroll(
        self, collection: str, flt: PointFilter, with_vectors: bool = False
    ) -> Iterator[StoredPoint]:
        self.check(collection)
        return self.inner.scroll(collection, flt, with_vectors)

    def optimize(self, collection: str, domain: str) -> None:
        self.check(collection)
        self.inner.optimize(collection, domain)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()
