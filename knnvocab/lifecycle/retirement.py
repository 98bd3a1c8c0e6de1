"""Retire a class (unlearning without losing history) and restore it.

Retiring class C at version v sets ``removed_in = v`` on its visible points: readers of v
and later no longer see them, readers of earlier versions still do. A point has one
lifetime ``[added_in, removed_in)``, which cannot express a gap, so restoring at version w
re-adds the retired points as new points (same vectors, ``added_in = w``, a
``restored_from`` link): every version stays exactly reproducible.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from knnvocab.catalog import audit
from knnvocab.catalog.domains import get_domain
from knnvocab.catalog.models import VocabClass
from knnvocab.catalog.versions import ClassChange, publish_version
from knnvocab.errors import VersionStateError
from knnvocab.lifecycle.common import (
    LifecycleResult,
    Operation,
    begin_operation,
    fail_operation,
    find_class,
    head_state,
    load,
    open_shard,
)
from knnvocab.store.base import PointFilter, StoredPoint, point_id
from knnvocab.workspace import Workspace

_BATCH = 512


def _begin(
    ws: Workspace, domain: str, name: str, operation: str, message: str, expected: str
) -> tuple[Operation, int, int, int | None]:
    """Take the lock for ``operation`` on class ``name``, which must be ``expected`` at the
    head. Returns the operation, the class's pk and id, and the version it was retired in."""
    open_shard(ws, domain)
    with ws.catalog.session() as s:
        row = get_domain(s, domain)
        op = begin_operation(s, ws, row, operation, message, {"class": name})
        # checked under the lock: no other version can change the class meanwhile
        cls = find_class(s, row, name)
        state = head_state(s, row, cls)
        if state != expected:
            raise VersionStateError(
                f"class {name!r} of domain {domain!r} is {state} at version "
                f"{row.head_version}; {operation} needs a {expected} class"
                + ("; its points were deleted" if state == "purged" else "")
            )
        return op, cls.id, cls.class_id, cls.removed_in


def _publish(
    ws: Workspace, op: Operation, class_pk: int, change: ClassChange, points: int
) -> LifecycleResult:
    with ws.catalog.session() as s:
        domain, version = load(s, op)
        cls = s.get_one(VocabClass, class_pk)
        result = LifecycleResult(
            domain=op.domain,
            version=op.number,
            operation=op.operation,
            target={"class": cls.name},
            points=points,
            per_class={cls.name: points},
        )
        publish_version(s, domain, version, {class_pk: change}, result.to_json())
        cls.removed_in = op.number if op.operation == "retire" else None
        audit.record(
            s,
            f"{op.operation}.publish",
            ws.settings.user,
            domain=op.domain,
            version=op.number,
            detail={"class": cls.name, "points": points, "run": op.run_id},
        )
    return result


def retire(ws: Workspace, domain: str, name: str, message: str = "") -> LifecycleResult:
    """Retire class ``name`` of ``domain`` in a new version: its instances are excluded
    from every query at or after that version; earlier versions still see them."""
    op, class_pk, class_id, _ = _begin(ws, domain, name, "retire", message, "live")
    try:
        visible = PointFilter(domain, class_ids=(class_id,), visible_at=op.head, live=True)
        ws.store.set_payload(op.collection, visible, {"removed_in": op.number})
        ws.store.flush()
        hidden = ws.store.count(op.collection, PointFilter(domain, removed_in=op.number))
        return _publish(ws, op, class_pk, ClassChange(removed=hidden, live=False), hidden)
    except BaseException as exc:
        mine = PointFilter(domain, removed_in=op.number)
        fail_operation(ws, op, exc, lambda: ws.store.clear_field(op.collection, mine, "removed_in"))
        raise


def _copies(op: Operation, points: Iterator[StoredPoint]) -> Iterator[list[StoredPoint]]:
    """New points for retired ``points``: same vector, ``added_in`` = this version."""
    batch: list[StoredPoint] = []
    for p in points:
        payload: dict[str, Any] = {k: v for k, v in p.payload.items() if k != "removed_in"}
        payload.update(added_in=op.number, restored_from=p.id, run_id=op.run_id)
        instance = f"{p.payload.get('instance', p.id)}@restored{op.number}"
        pid = point_id(
            op.domain,
            str(p.payload.get("dataset", "")),
            str(p.payload.get("image", "")),
            instance,
            op.fingerprint,
        )
        batch.append(StoredPoint(pid, p.vector, payload))
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def restore(ws: Workspace, domain: str, name: str, message: str = "") -> LifecycleResult:
    """Restore retired class ``name`` of ``domain`` in a new version: its retired points
    are visible again from that version on (as new points; earlier versions unchanged)."""
    op, class_pk, class_id, retired_in = _begin(ws, domain, name, "restore", message, "retired")
    try:
        if retired_in is None:
            raise VersionStateError(f"class {name!r} of {domain!r} has no retiring version")
        retired = PointFilter(domain, class_ids=(class_id,), removed_in=retired_in)
        # the copies do not match ``retired``, so inserting them cannot disturb the scroll
        originals = ws.store.scroll(op.collection, retired, with_vectors=True)
        for batch in _copies(op, originals):
            ws.store.insert(op.collection, domain, batch)
        ws.store.flush()
        added = ws.store.count(op.collection, PointFilter(domain, added_in=op.number))
        return _publish(ws, op, class_pk, ClassChange(added=added, live=True), added)
    except BaseException as exc:
        mine = PointFilter(domain, added_in=op.number)
        fail_operation(ws, op, exc, lambda: ws.store.delete(op.collection, mine))
        raise
