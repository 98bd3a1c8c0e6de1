"""The `repair` version doctor publishes after points were lost from the store.

Counts are cumulative (each version's are the previous version's plus its changes), so a
point lost from the store would stay counted in every later version, each flagged again.
A repair version changes nothing in the store: its counts are the store's, and versions
after it start from the truth. The versions that lost points are marked not reproducible
by doctor itself.
"""

from __future__ import annotations

from knnvocab.catalog import audit
from knnvocab.catalog.domains import get_domain
from knnvocab.catalog.versions import publish_version
from knnvocab.lifecycle.common import (
    begin_operation,
    fail_operation,
    load,
    open_shard,
    store_shortfall,
)
from knnvocab.workspace import Workspace


def publish_repair(ws: Workspace, domain: str, lost: dict[str, int]) -> int:
    """Publish a version of ``domain`` whose counts are what the store shows (``lost``:
    points per class name missing at the head, for the record). Returns its number."""
    open_shard(ws, domain)
    total = sum(lost.values())
    message = f"doctor: {total} lost point(s) no longer counted"
    with ws.catalog.session() as s:
        op = begin_operation(s, ws, get_domain(s, domain), "repair", message, {"lost": lost})
    try:
        changes = store_shortfall(ws, op)
        with ws.catalog.session() as s:
            row, version = load(s, op)
            publish_version(s, row, version, changes, {"lost": lost, "points": total})
            audit.record(
                s,
                "repair.publish",
                ws.settings.user,
                domain=domain,
                version=op.number,
                detail={"lost": lost, "run": op.run_id},
            )
        return op.number
    except BaseException as exc:
        fail_operation(ws, op, exc, lambda: None)
        raise
