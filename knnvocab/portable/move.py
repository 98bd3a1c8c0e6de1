"""Moving domains between deployments (embedded ⇄ scaled): each domain is exported,
imported into the target, and verified there (`verify_same`) before anything is said to
have moved; the source is deleted only with ``delete_source`` and only after that.

Resumable: an import is idempotent, so running the same move again finishes it."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knnvocab.portable.export import export_domain
from knnvocab.portable.importing import import_domain
from knnvocab.portable.verify import verify_same
from knnvocab.progress import Progress
from knnvocab.workspace import Workspace


@dataclass(frozen=True)
class MoveResult:
    domain: str
    points: dict[str, int]
    versions: int
    images: int
    already: bool
    deleted_source: bool

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def move_domain(
    source: Workspace,
    target: Workspace,
    domain: str,
    *,
    actor: str,
    delete_source: bool = False,
    progress: Progress | None = None,
) -> MoveResult:
    """Copy ``domain`` from ``source`` to ``target``, verify it, then (``delete_source``)
    delete it from ``source``. A target that holds the domain already (an earlier run
    copied it) is only verified: a different domain of that name fails verification."""
    from knnvocab.lifecycle.domains import delete_domain

    points: dict[str, int] = {}
    there = _holds(target, domain)
    if not there:  # else a run that copied it already: verification decides
        scratch = Path(tempfile.mkdtemp(prefix=".move.", dir=_scratch_root(source)))
        try:
            archive = scratch / f"{domain}.knnvocab.tar"
            points = dict(export_domain(source, domain, archive, progress).counts["points"])
            import_domain(target, archive, actor=actor, progress=progress)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    checked = verify_same(source, target, domain)
    if delete_source:
        delete_domain(
            source, domain, f"moved to {target.settings.database_url.split('@')[-1]}", actor=actor
        )
    return MoveResult(domain, points, checked["versions"], checked["images"], there, delete_source)


def _holds(ws: Workspace, domain: str) -> bool:
    from knnvocab.catalog.domains import find_domain

    with ws.catalog.session() as s:
        return find_domain(s, domain) is not None


def _scratch_root(ws: Workspace) -> Path:
    ws.settings.home.mkdir(parents=True, exist_ok=True)
    return ws.settings.home
