"""What the lifecycle operations (retire, restore, purge, repair) share: their result,
the store's counts against the head's, and class look-ups. Each runs as a versioned
change (`knnvocab.changes`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from knnvocab.catalog.classes import domain_classes
from knnvocab.catalog.models import Domain, VocabClass, VocabVersion
from knnvocab.catalog.versions import ClassChange, get_version, snapshot
from knnvocab.changes import Change
from knnvocab.errors import NotFoundError, VersionStateError
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace


@dataclass(frozen=True)
class LifecycleResult:
    """What a retire, restore or purge did: the version it published and the points per
    class it hid, re-added or deleted."""

    domain: str
    version: int
    operation: str
    target: dict[str, str]  # {"class": name} or {"dataset": name}
    points: int
    per_class: dict[str, int]
    versions_not_reproducible: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def store_shortfall(change: Change) -> dict[int, ClassChange]:
    """Per class (primary key): the instances the head's counts hold that the store does
    not show at ``op``'s version — points lost from the store, or deleted by an earlier
    purge that failed half-way. Publishing ``op`` with these removals makes its counts the
    store's, so a loss is never carried into later versions."""
    flt = PointFilter(change.domain, visible_at=change.number)
    store = change.ws.store
    visible = {int(c): n for c, n in store.counts_by(change.collection, flt, "class_id").items()}
    with change.ws.catalog.session() as s:
        rows = snapshot(s, get_version(s, s.get_one(Domain, change.domain_id), change.head))
        return {
            r.class_pk: ClassChange(removed=r.instances - visible.get(r.vocab_class.class_id, 0))
            for r in rows
            if r.instances > visible.get(r.vocab_class.class_id, 0)
        }


def mark_not_reproducible(ws: Workspace, domain_id: int, versions: list[int]) -> None:
    """Record that ``versions`` of the domain lost points they showed (purged or lost)."""
    if not versions:
        return
    with ws.catalog.session() as s:
        s.execute(
            update(VocabVersion)
            .where(VocabVersion.domain_id == domain_id, VocabVersion.number.in_(versions))
            .values(reproducible=False)
        )


def find_class(s: Session, domain: Domain, name: str) -> VocabClass:
    """A class of ``domain`` by name; NotFoundError listing some known names."""
    classes = domain_classes(s, domain)
    if name not in classes:
        known = ", ".join(sorted(classes)[:15])
        raise NotFoundError(f"domain {domain.name!r} has no class {name!r} (known: {known})")
    return classes[name]


def head_state(s: Session, domain: Domain, cls: VocabClass) -> str:
    """``live``, ``retired`` or ``purged``: the class at the domain's head."""
    if domain.head_version == 0:
        raise VersionStateError(f"domain {domain.name!r} has no published version yet")
    rows = snapshot(s, get_version(s, domain, domain.head_version))
    row = next((r for r in rows if r.class_pk == cls.id), None)
    if row is None:
        return "purged"
    return "live" if row.live else "retired"
