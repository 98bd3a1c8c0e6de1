"""Retire a class (unlearning without losing history) and restore it.

Retiring class C at version v sets ``removed_in = v`` on its visible points: readers of v
and later no longer see them, readers of earlier versions still do. A point has one
lifetime ``[added_in, removed_in)``, which cannot express a gap, so restoring at version w
re-adds the retired points as new points (same vectors, ``added_in = w``, a
``restored_from`` link): every version stays exactly reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from knnvocab.catalog.models import Domain, VocabClass, VocabVersion
from knnvocab.catalog.versions import ClassChange
from knnvocab.changes import Change, Opening, versioned_change
from knnvocab.errors import VersionStateError
from knnvocab.lifecycle.common import LifecycleResult, find_class, head_state
from knnvocab.store.base import PointFilter, StoredPoint, point_id
from knnvocab.workspace import Workspace

_BATCH = 512


@dataclass
class _Target:
    """The class an operation works on, resolved under the domain's lock."""

    name: str
    expected: str  # the state the class must be in at the head
    pk: int = 0
    class_id: int = 0
    retired_in: int | None = None

    def check(self, s: Session, domain: Domain, version: VocabVersion, _run: str) -> None:
        """Checked under the lock: no other version can change the class meanwhile."""
        cls = find_class(s, domain, self.name)
        state = head_state(s, domain, cls)
        if state != self.expected:
            raise VersionStateError(
                f"class {self.name!r} of domain {domain.name!r} is {state} at version "
                f"{domain.head_version}; {version.operation} needs a {self.expected} class"
                + ("; its points were deleted" if state == "purged" else "")
            )
        self.pk, self.class_id, self.retired_in = cls.id, cls.class_id, cls.removed_in


def _publish(change: Change, target: _Target, diff: ClassChange, points: int) -> LifecycleResult:
    result = LifecycleResult(
        domain=change.domain,
        version=change.number,
        operation=change.operation,
        target={"class": target.name},
        points=points,
        per_class={target.name: points},
    )

    def lifetime(s: Session, _domain: Domain, _version: VocabVersion) -> None:
        cls = s.get_one(VocabClass, target.pk)
        cls.removed_in = change.number if change.operation == "retire" else None

    change.publish(
        {target.pk: diff},
        result.to_json(),
        {"class": target.name, "points": points},
        then=lifetime,
    )
    return result


def retire(
    ws: Workspace, domain: str, name: str, message: str = "", *, actor: str
) -> LifecycleResult:
    """Retire class ``name`` of ``domain`` in a new version: its instances are excluded
    from every query at or after that version; earlier versions still see them."""
    target = _Target(name, "live")
    opening = Opening(message=message, params={"class": name})
    with versioned_change(ws, domain, "retire", actor, opening, prepare=target.check) as change:
        visible = PointFilter(
            domain, class_ids=(target.class_id,), visible_at=change.head, live=True
        )
        ws.store.set_removed_in(change.collection, visible, change.number)
        ws.store.flush()
        hidden = ws.store.count(change.collection, PointFilter(domain, removed_in=change.number))
        result = _publish(change, target, ClassChange(removed=hidden, live=False), hidden)
    return result


def _copies(op: Change, points: Iterator[StoredPoint]) -> Iterator[list[StoredPoint]]:
    """New points for retired ``points``: same vector, ``added_in`` = this version."""
    batch: list[StoredPoint] = []
    for p in points:
        payload = replace(
            p.payload, added_in=op.number, removed_in=None, restored_from=p.id, run_id=op.run_id
        )
        instance = f"{p.payload.instance}@restored{op.number}"
        pid = point_id(op.domain, p.payload.dataset, p.payload.image, instance, op.fingerprint)
        batch.append(StoredPoint(pid, p.vector, payload))
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def restore(
    ws: Workspace, domain: str, name: str, message: str = "", *, actor: str
) -> LifecycleResult:
    """Restore retired class ``name`` of ``domain`` in a new version: its retired points
    are visible again from that version on (as new points; earlier versions unchanged)."""
    target = _Target(name, "retired")
    opening = Opening(message=message, params={"class": name})
    with versioned_change(ws, domain, "restore", actor, opening, prepare=target.check) as change:
        if target.retired_in is None:
            raise VersionStateError(f"class {name!r} of {domain!r} has no retiring version")
        retired = PointFilter(domain, class_ids=(target.class_id,), removed_in=target.retired_in)
        # the copies do not match ``retired``, so inserting them cannot disturb the scroll
        originals = ws.store.scroll(change.collection, retired, with_vectors=True)
        for batch in _copies(change, originals):
            ws.store.insert(change.collection, domain, batch)
        ws.store.flush()
        added = ws.store.count(change.collection, PointFilter(domain, added_in=change.number))
        result = _publish(change, target, ClassChange(added=added, live=True), added)
    return result
