"""The `repair` version doctor publishes after points were lost from the store.

Counts are cumulative (each version's are the previous version's plus its changes), so a
point lost from the store would stay counted in every later version, each flagged again.
A repair version changes nothing in the store: its counts are the store's, and versions
after it start from the truth. The versions that lost points are marked not reproducible
by doctor itself.
"""

from __future__ import annotations

from knnvocab.changes import Opening, versioned_change
from knnvocab.lifecycle.common import store_shortfall
from knnvocab.workspace import Workspace


def publish_repair(ws: Workspace, domain: str, lost: dict[str, int], *, actor: str) -> int:
    """Publish a version of ``domain`` whose counts are what the store shows (``lost``:
    points per class name missing at the head, for the record). Returns its number."""
    total = sum(lost.values())
    opening = Opening(
        message=f"doctor: {total} lost point(s) no longer counted", params={"lost": lost}
    )
    with versioned_change(ws, domain, "repair", actor, opening) as change:
        summary = {"lost": lost, "points": total}
        change.publish(store_shortfall(change), summary, {"lost": lost})
    return change.number
