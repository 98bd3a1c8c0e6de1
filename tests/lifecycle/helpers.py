"""Comparing the catalog with the store, version by version (what `segment --version N`
would see), for the lifecycle tests."""

from __future__ import annotations

from knnvocab.history import version_log, vocabulary
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace


def collection_of(ws: Workspace, domain: str) -> str:
    from knnvocab.catalog.domains import get_domain

    with ws.catalog.session() as s:
        encoder = get_domain(s, domain).encoder
        assert encoder is not None
        return encoder.collection


def class_id(ws: Workspace, domain: str, name: str) -> int:
    """The id of class ``name`` of ``domain`` (as stored on its points)."""
    return next(c.class_id for c in vocabulary(ws, domain).classes if c.name == name)


def catalog_counts(ws: Workspace, domain: str, version: int) -> dict[int, int]:
    """Instances per class id a reader of ``version`` sees, according to the catalog."""
    return {c.class_id: c.instances for c in vocabulary(ws, domain, version).live if c.instances}


def version_collection(ws: Workspace, domain: str, version: int) -> str:
    """The collection ``version`` reads (its encoder's: a reembed moves later versions)."""
    from knnvocab.catalog.domains import get_domain
    from knnvocab.catalog.versions import get_version

    with ws.catalog.session() as s:
        return get_version(s, get_domain(s, domain), version).encoder.collection


def store_counts(ws: Workspace, domain: str, version: int) -> dict[int, int]:
    """Points per class id visible at ``version``, according to the store (in the
    collection that version reads)."""
    flt = PointFilter(domain, visible_at=version)
    collection = version_collection(ws, domain, version)
    return {int(k): v for k, v in ws.store.counts_by(collection, flt, "class_id").items()}


def assert_every_version_matches(ws: Workspace, domain: str) -> dict[int, dict[int, int]]:
    """Reproducible versions: the store shows exactly what the catalog recorded. Versions
    marked not reproducible: the store shows a subset. Returns the store counts."""
    seen = {}
    for record in version_log(ws, domain):
        if record.state != "published":
            continue
        stored = store_counts(ws, domain, record.number)
        recorded = catalog_counts(ws, domain, record.number)
        if record.reproducible:
            assert stored == recorded, f"version {record.number}"
        else:
            assert all(n <= recorded.get(c, 0) for c, n in stored.items()), record.number
            assert stored != recorded, f"version {record.number} is marked for nothing"
        seen[record.number] = stored
    return seen
