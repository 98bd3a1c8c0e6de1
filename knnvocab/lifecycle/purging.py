"""Purge: the hard delete of a data-protection request.

The points of a class or of a dataset are deleted physically in a new version. Every
earlier version whose visible set contained any of them is marked not reproducible, and
the audit log keeps a tombstone (what, how many, who, when, why). A purge cannot be undone:
one whose process died is finished (`finish_purge`, run by `doctor --repair`) from the plan
it recorded in its version before it deleted anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from knnvocab.catalog import audit
from knnvocab.catalog.classes import domain_classes
from knnvocab.catalog.domains import get_domain
from knnvocab.catalog.models import Dataset, Domain, VocabClass, VocabVersion
from knnvocab.catalog.versions import ClassChange, pending_version
from knnvocab.changes import Change, Opening, head_encoder, versioned_change
from knnvocab.errors import ConfigError, NotFoundError, StoreError, VersionStateError
from knnvocab.lifecycle.common import (
    LifecycleResult,
    find_class,
    head_state,
    mark_not_reproducible,
    store_shortfall,
)
from knnvocab.store.base import PointFilter, VectorStore
from knnvocab.workspace import Workspace


@dataclass(frozen=True)
class PurgeTarget:
    """What a purge deletes, resolved against the catalog."""

    what: str  # "class" | "dataset"
    name: str
    flt: PointFilter
    class_pk: int | None  # the purged class (class purges only)
    published: list[int]  # the domain's published versions
    names: dict[int, str]  # class id -> name
    head: int
    #: per published version, the collection of the encoder it reads (a reembed moves
    #: later versions to another one)
    collections: dict[int, str]

    def every_collection(self, head_collection: str) -> list[str]:
        """Every collection holding the domain's points: a purge deletes from each."""
        return sorted(set(self.collections.values()) | {head_collection})


@dataclass(frozen=True)
class PurgePlan:
    """The points a purge deletes: in total and per class, those visible at the head (per
    class id), and the published versions that saw any of them."""

    domain: str
    what: str
    name: str
    points: int
    per_class: dict[str, int]
    visible_at_head: dict[int, int]
    versions_not_reproducible: list[int]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PurgePlan:
        visible = {int(c): int(n) for c, n in data["visible_at_head"].items()}
        return cls(**{**data, "visible_at_head": visible})


def _resolve(
    s: Session, domain: Domain, class_name: str | None, dataset: str | None
) -> PurgeTarget:
    if (class_name is None) == (dataset is None):
        raise ConfigError("purge needs exactly one of a class or a dataset")
    class_pk = None
    if class_name is not None:
        cls = find_class(s, domain, class_name)
        if head_state(s, domain, cls) == "purged":
            raise VersionStateError(f"class {class_name!r} of {domain.name!r} is already purged")
        what, name, class_pk = "class", class_name, cls.id
        flt = PointFilter(domain.name, class_ids=(cls.class_id,))
    else:
        what, name = "dataset", str(dataset)
        known = set(s.scalars(select(Dataset.name).where(Dataset.domain_id == domain.id)))
        if name not in known:
            raise NotFoundError(
                f"domain {domain.name!r} has no dataset {name!r} "
                f"(known: {', '.join(sorted(known)) or 'none'})"
            )
        flt = PointFilter(domain.name, dataset=name)
    published = {
        v.number: v.encoder.collection
        for v in s.scalars(
            select(VocabVersion)
            .where(VocabVersion.domain_id == domain.id, VocabVersion.state == "published")
            .order_by(VocabVersion.number)
        )
    }
    classes = domain_classes(s, domain).values()
    return PurgeTarget(
        what=what,
        name=name,
        flt=flt,
        class_pk=class_pk,
        published=list(published),
        names={c.class_id: c.name for c in classes},
        head=domain.head_version,
        collections=published,
    )


def _at(flt: PointFilter, version: int) -> PointFilter:
    return replace(flt, visible_at=version)


def _plan(store: VectorStore, collection: str, target: PurgeTarget) -> PurgePlan:
    """Count the doomed points (in the head's collection); find the versions that saw any
    of them (exactly: one count per published version, in the collection it reads)."""
    flt = target.flt
    by_class = store.counts_by(collection, flt, "class_id")
    visible = store.counts_by(collection, _at(flt, target.head), "class_id")
    saw = [
        v
        for v in target.published
        if store.count(target.collections.get(v, collection), _at(flt, v))
    ]
    return PurgePlan(
        domain=flt.domain,
        what=target.what,
        name=target.name,
        points=sum(by_class.values()),
        per_class={target.names.get(int(c), f"#{c}"): n for c, n in sorted(by_class.items())},
        visible_at_head={int(c): n for c, n in visible.items()},
        versions_not_reproducible=saw,
    )


def plan_purge(
    ws: Workspace, domain: str, *, class_name: str | None = None, dataset: str | None = None
) -> PurgePlan:
    """What `purge` would delete, without changing anything (the confirmation prompt)."""
    with ws.catalog.session() as s:
        row = get_domain(s, domain)
        collection = head_encoder(s, row).collection
        target = _resolve(s, row, class_name, dataset)
    return _plan(ws.store, collection, target)


def purge(
    ws: Workspace,
    domain: str,
    *,
    actor: str,
    class_name: str | None = None,
    dataset: str | None = None,
    message: str = "",
    resume: bool = False,
) -> LifecycleResult:
    """Delete every point of class ``class_name`` or of dataset ``dataset`` from ``domain``
    in a new version; for a class, the class leaves the vocabulary at that version.
    ``resume``: finish the domain's pending purge (see `finish_purge`).

    If the store fails half-way the version is left failed and a StoreError says so; run
    the purge again (or `knnvocab doctor`) for what remains.
    """
    what = {"class": class_name} if class_name is not None else {"dataset": dataset}
    params = {k: str(v) for k, v in what.items()}
    opening = Opening(message=message, params=params, undoable=False)
    targets: list[PurgeTarget] = []

    def resolve(s: Session, row: Domain, _version: VocabVersion, _run: str) -> None:
        targets.append(_resolve(s, row, class_name, dataset))

    deleting = False
    try:
        with versioned_change(
            ws, domain, "purge", actor, opening, prepare=resolve, resume=resume
        ) as change:
            (target,) = targets
            plan = _recorded_plan(ws, change, target)
            change.on_fail.append(_partial(change, plan, message))
            deleting = True
            for collection in target.every_collection(change.collection):
                ws.store.delete(collection, target.flt)
            ws.store.flush()
            result = _publish(change, target, plan, message)
    except Exception as exc:
        if not deleting:
            raise
        raise StoreError(
            f"purge of {targets[0].what} {targets[0].name!r} from {domain!r} failed after it "
            f"started deleting points ({type(exc).__name__}: {exc}); some may be gone: "
            f"version {change.number} is marked failed — run the purge again to finish it"
        ) from None
    return result


def _recorded_plan(ws: Workspace, change: Change, target: PurgeTarget) -> PurgePlan:
    """The purge's plan, recorded in its version before anything is deleted (a resumed
    purge reads it back: what it already deleted no longer counts in the store); the
    versions that will lose points are marked not reproducible."""
    with ws.catalog.session() as s:
        version = s.get_one(VocabVersion, change.version_id)
        recorded = version.params.get("plan")
    if recorded is not None:
        plan = PurgePlan.from_json(recorded)
    else:
        plan = _plan(ws.store, change.collection, target)
        with ws.catalog.session() as s:
            version = s.get_one(VocabVersion, change.version_id)
            version.params = {**version.params, "plan": plan.to_json()}
    mark_not_reproducible(ws, change.domain_id, plan.versions_not_reproducible)
    return plan


def finish_purge(ws: Workspace, domain: str, *, actor: str) -> LifecycleResult:
    """Finish ``domain``'s pending purge whose process died: a purge cannot be undone (it
    may have deleted points already), so the rest is deleted and the version published,
    with the tombstone of the plan it recorded."""
    with ws.catalog.session() as s:
        version = pending_version(s, get_domain(s, domain))
        if version is None or version.operation != "purge":
            raise VersionStateError(f"domain {domain!r} has no pending purge")
        params, message = dict(version.params), version.message
    return purge(
        ws,
        domain,
        actor=actor,
        class_name=params.get("class"),
        dataset=params.get("dataset"),
        message=message,
        resume=True,
    )


def _partial(change: Change, plan: PurgePlan, message: str) -> Callable[[Session, str, str], None]:
    """Records, if the purge fails after it started deleting, what it set out to delete."""

    def record(s: Session, _end: str, reason: str) -> None:
        audit.record(
            s,
            "purge.partial",
            change.actor,
            domain=change.domain,
            version=change.number,
            detail={**_tombstone(plan, message), "error": reason},
        )

    return record


def _tombstone(plan: PurgePlan, message: str) -> dict[str, Any]:
    return {
        "what": plan.what,
        "name": plan.name,
        "points": plan.points,
        "per_class": plan.per_class,
        "message": message,
        "versions_not_reproducible": plan.versions_not_reproducible,
    }


def _publish(change: Change, target: PurgeTarget, plan: PurgePlan, message: str) -> LifecycleResult:
    result = LifecycleResult(
        domain=change.domain,
        version=change.number,
        operation="purge",
        target={target.what: target.name},
        points=plan.points,
        per_class=plan.per_class,
        versions_not_reproducible=plan.versions_not_reproducible,
    )
    # counts from the store: they include what an earlier failed attempt already deleted
    changes = store_shortfall(change)
    if target.class_pk is not None:
        visible = sum(plan.visible_at_head.values())
        changes[target.class_pk] = ClassChange(removed=visible, purged=True)

    def leave_vocabulary(s: Session, _domain: Domain, _version: VocabVersion) -> None:
        if target.class_pk is not None:  # later ingests skip it, like a retired class
            s.get_one(VocabClass, target.class_pk).removed_in = change.number

    change.publish(
        changes,
        result.to_json(),
        _tombstone(plan, message),
        action="purge",
        then=leave_vocabulary,
    )
    return result
