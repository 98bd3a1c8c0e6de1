"""Rolling back a pending version of any operation, and telling a dead one from a live one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from knnvocab.catalog import audit
from knnvocab.catalog.domains import get_domain
from knnvocab.catalog.models import IngestRun, VocabVersion, utcnow
from knnvocab.catalog.versions import close_version, pending_version, process_alive
from knnvocab.errors import VersionStateError
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace

#: a pending version with no sign of life for this long is dead
STALE_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class Liveness:
    """Whether a process still works on a pending version, and why we think so."""

    alive: bool
    reason: str


def liveness(s: Session, version: VocabVersion, now: datetime | None = None) -> Liveness:
    """Dead: no heartbeat for `STALE_AFTER`, or its process (same host) is gone.

    An ingest beats in its run's ``heartbeat_at``; retire, restore and purge record their
    pid in the version's params and are judged by their start time.
    """
    now = now or utcnow()
    run = s.scalar(
        select(IngestRun)
        .where(IngestRun.version_id == version.id)
        .order_by(IngestRun.started_at.desc())
        .limit(1)
    )
    host, pid, seen = version.host, version.params.get("pid"), version.created_at
    if run is not None:
        host, pid, seen = run.host, run.pid, run.heartbeat_at
        if run.status != "running":
            return Liveness(False, f"its last run {run.id[:8]} is {run.status}")
    if now - seen > STALE_AFTER:
        minutes = int((now - seen).total_seconds() // 60)
        return Liveness(False, f"no sign of life for {minutes} minutes")
    if host == audit.hostname() and isinstance(pid, int) and not process_alive(pid):
        return Liveness(False, f"its process {pid} on this host has exited")
    return Liveness(True, f"process {pid} on {host} last seen {seen:%H:%M:%S} UTC")


def rollback_pending(ws: Workspace, domain: str, reason: str = "rolled back by user") -> int:
    """Roll back a domain's pending version of any operation: delete the points it added,
    make the points it hid live again, and mark it rolled back. Returns its number.

    A pending purge cannot be undone: points it already deleted stay deleted (the versions
    that showed them were marked not reproducible before it started deleting).
    """
    with ws.catalog.session() as s:
        row = get_domain(s, domain)
        version = pending_version(s, row)
        if version is None:
            raise VersionStateError(f"domain {domain!r} has no pending version")
        collection, number = version.encoder.collection, version.number
        operation = version.operation
    ws.store.delete(collection, PointFilter(domain=domain, added_in=number))
    ws.store.clear_field(collection, PointFilter(domain=domain, removed_in=number), "removed_in")
    ws.store.flush()
    with ws.catalog.session() as s:
        row = get_domain(s, domain)
        version = pending_version(s, row)
        if version is None or version.number != number:
            raise VersionStateError(f"pending version {number} of {domain!r} changed meanwhile")
        close_version(s, row, version, "rolled_back", reason)
        s.execute(
            update(IngestRun)
            .where(IngestRun.version_id == version.id, IngestRun.status == "running")
            .values(status="interrupted", ended_at=utcnow())
        )
        audit.record(
            s,
            "version.rollback",
            ws.settings.user,
            domain=domain,
            version=number,
            detail={"reason": reason, "operation": operation},
        )
    return number
