"""Rolling back a pending version of any operation, and telling a dead one from a live one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from knnvocab.catalog import audit
from knnvocab.catalog.models import IngestRun, VocabVersion, utcnow
from knnvocab.catalog.versions import process_alive
from knnvocab.changes import attach, close, undo_store
from knnvocab.faults import fault
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


def rollback_pending(
    ws: Workspace, domain: str, *, actor: str, reason: str = "rolled back by user"
) -> int:
    """Roll back a domain's pending version of any operation: delete the points it added,
    make the points it hid live again, and mark it rolled back. Returns its number.

    A pending purge cannot be undone: points it already deleted stay deleted (the versions
    that showed them were marked not reproducible before it started deleting).
    """
    change = attach(ws, domain, actor)
    undo_store(ws, change.collection, domain, change.number, change.operation)
    fault(ws.settings, "rollback.after_undo")

    def stop_runs(s: Session, _end: str, _reason: str) -> None:
        s.execute(
            update(IngestRun)
            .where(IngestRun.version_id == change.version_id, IngestRun.status == "running")
            .values(status="interrupted", ended_at=utcnow())
        )

    change.on_fail.append(stop_runs)
    detail = {"reason": reason, "operation": change.operation}
    close(change, "rolled_back", reason, "version.rollback", detail)
    return change.number
