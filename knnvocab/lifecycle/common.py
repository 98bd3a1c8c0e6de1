"""What every lifecycle operation (retire, restore, purge) shares: taking the domain's
write lock as a new pending version, and ending it as published or failed.

An operation runs in three steps: a short catalog transaction opens version N (the
lock), the store is changed with points tagged N, and a second transaction publishes.
A failure in between undoes the store change and closes the version as failed.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from knnvocab.catalog import audit
from knnvocab.catalog.classes import domain_classes
from knnvocab.catalog.domains import get_domain
from knnvocab.catalog.models import Domain, VocabClass, VocabVersion
from knnvocab.catalog.versions import (
    ClassChange,
    begin_version,
    close_version,
    get_version,
    snapshot,
)
from knnvocab.errors import NotFoundError, VersionStateError
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Operation:
    """A pending lifecycle version, carried between short catalog transactions."""

    domain: str
    domain_id: int
    version_id: int
    number: int
    head: int
    operation: str
    collection: str
    fingerprint: str
    run_id: str


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


def open_shard(ws: Workspace, domain: str) -> str:
    """The domain's collection, with its store opened first: a store busy in another
    process is refused before any version is taken."""
    with ws.catalog.session() as s:
        row = get_domain(s, domain)
        if row.encoder is None or row.head_version == 0:
            raise NotFoundError(f"domain {domain!r} has no published version yet")
        collection = row.encoder.collection
    ws.store.count(collection, PointFilter(domain=domain))
    return collection


def begin_operation(
    s: Session, ws: Workspace, domain: Domain, operation: str, message: str, params: dict[str, Any]
) -> Operation:
    """Open the next version of ``domain`` as pending for ``operation`` (the lock)."""
    encoder = domain.encoder
    if encoder is None:
        raise NotFoundError(f"domain {domain.name!r} has no published version yet")
    run_id = str(uuid.uuid4())
    version = begin_version(
        s,
        domain,
        operation,
        encoder,
        ws.settings.user,
        message=message,
        params={**params, "run": run_id, "pid": os.getpid()},
    )
    return Operation(
        domain=domain.name,
        domain_id=domain.id,
        version_id=version.id,
        number=version.number,
        head=domain.head_version,
        operation=operation,
        collection=encoder.collection,
        fingerprint=encoder.fingerprint,
        run_id=run_id,
    )


def store_shortfall(ws: Workspace, op: Operation) -> dict[int, ClassChange]:
    """Per class (primary key): the instances the head's counts hold that the store does
    not show at ``op``'s version — points lost from the store, or deleted by an earlier
    purge that failed half-way. Publishing ``op`` with these removals makes its counts the
    store's, so a loss is never carried into later versions."""
    flt = PointFilter(op.domain, visible_at=op.number)
    visible = {int(c): n for c, n in ws.store.counts_by(op.collection, flt, "class_id").items()}
    with ws.catalog.session() as s:
        rows = snapshot(s, get_version(s, s.get_one(Domain, op.domain_id), op.head))
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


def load(s: Session, op: Operation) -> tuple[Domain, VocabVersion]:
    """The domain and version rows of ``op`` in session ``s``."""
    return s.get_one(Domain, op.domain_id), s.get_one(VocabVersion, op.version_id)


def fail_operation(
    ws: Workspace, op: Operation, exc: BaseException, undo: Callable[[], None]
) -> None:
    """Undo the store change of ``op``, then close its version as failed (audited).

    If the undo itself fails the version stays pending: `knnvocab vocab rollback` or
    `knnvocab doctor --repair` finishes the job.
    """
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    try:
        undo()
        ws.store.flush()
    except Exception as cleanup:
        log.error(
            "could not undo %s version %s of %r (%s); it stays pending: roll it back with "
            "`knnvocab vocab rollback %s`",
            op.operation,
            op.number,
            op.domain,
            cleanup,
            op.domain,
        )
        return
    with ws.catalog.session() as s:
        domain, version = load(s, op)
        close_version(s, domain, version, "failed", reason)
        audit.record(
            s,
            f"{op.operation}.fail",
            ws.settings.user,
            domain=op.domain,
            version=op.number,
            detail={"run": op.run_id, "error": reason},
        )
