"""Adopting a store the catalog has not recorded: what it holds against what the catalog
counts (`survey`), and `knnvocab store adopt` (`adopt_store`), which records it after
saying what it found."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from knnvocab.catalog.models import Encoder, StoreIdentity
from knnvocab.catalog.stores import head_counts, recorded_identity
from knnvocab.store.base import PointFilter

if TYPE_CHECKING:
    from knnvocab.store.checked import CheckedStore
    from knnvocab.workspace import Workspace


@dataclass(frozen=True)
class Survey:
    """One collection: per domain, the points the catalog counts at its head and the
    points the store shows at that version (domains only the store has: catalog 0)."""

    collection: str
    catalog: dict[str, int]
    store: dict[str, int]

    @property
    def matches(self) -> bool:
        return self.catalog == self.store

    def describe(self) -> str:
        names = sorted(set(self.catalog) | set(self.store))
        if not names:
            return "no domains in either"
        parts = [
            f"{n}: catalog {self.catalog.get(n, 0)}, store {self.store.get(n, 0)}" for n in names
        ]
        return (
            "points at each domain's head: "
            + "; ".join(parts[:8])
            + (f"; … ({len(parts) - 8} more)" if len(parts) > 8 else "")
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def survey(store: CheckedStore, collection: str) -> Survey:
    """Count, without the identity check, what ``collection`` holds per domain."""
    with store.catalog.session() as s:
        heads = head_counts(s, collection)
    inner = store.inner
    counts: dict[str, int] = {}
    for name in sorted(set(inner.domains(collection)) | set(heads)):
        head = heads.get(name, (0, 0))[0]
        flt = PointFilter(name, visible_at=head) if head else PointFilter(name)
        n = inner.count(collection, flt)
        if n or name in heads:
            counts[name] = n
    return Survey(collection, {n: c for n, (_, c) in heads.items()}, counts)


@dataclass(frozen=True)
class AdoptionReport:
    """What `adopt_store` found for one collection and what it did."""

    collection: str
    state: str  # recorded | missing | no-identity | foreign-identity
    identity: str | None
    survey: Survey | None
    adopted: bool = False
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["survey"] = self.survey.to_json() if self.survey else None
        return data


def _collections(ws: Workspace) -> list[str]:
    with ws.catalog.session() as s:
        names = set(s.scalars(select(Encoder.collection)))
        names |= set(s.scalars(select(StoreIdentity.collection)))
    return sorted(names)


def adopt_store(ws: Workspace, actor: str, apply: bool = False) -> list[AdoptionReport]:
    """Per collection the catalog knows: is the store's collection the recorded one?
    With ``apply``, record every present but unrecorded (or foreign) collection as this
    catalog's, giving a collection without identity this store's identity."""
    store = ws.store
    reports = []
    for collection in _collections(ws):
        with ws.catalog.session() as s:
            row = recorded_identity(s, collection)
            recorded = row.identity if row else None
        state = store.inner.describe(collection)
        if state is None:
            reports.append(AdoptionReport(collection, "missing", recorded, None))
            continue
        if recorded is not None and state.identity == recorded:
            reports.append(AdoptionReport(collection, "recorded", recorded, None))
            continue
        found = survey(store, collection)
        kind = "foreign-identity" if state.identity else "no-identity"
        adopted = False
        identity = state.identity
        if apply:
            identity = state.identity or store.inner.adopt(collection)
            store.record(collection, identity, "adopted", actor, found.to_json())
            adopted = True
        reports.append(AdoptionReport(collection, kind, identity, found, adopted))
    return reports
