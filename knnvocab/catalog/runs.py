"""Ingest runs: one process working on a pending version; a resume is a new run."""

from __future__ import annotations

import os
import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from knnvocab import __version__
from knnvocab.catalog import audit
from knnvocab.catalog.models import IngestRun, VocabVersion, utcnow


def start_run(
    session: Session,
    version: VocabVersion,
    dataset_id: int,
    encoder_id: int,
    user: str,
    params: dict[str, Any],
    images_total: int,
    run_id: str | None = None,
) -> IngestRun:
    # an earlier run of this version that is still "running" was killed
    session.execute(
        update(IngestRun)
        .where(IngestRun.version_id == version.id, IngestRun.status == "running")
        .values(status="interrupted", ended_at=utcnow())
    )
    run = IngestRun(
        id=run_id or str(uuid.uuid4()),
        version_id=version.id,
        dataset_id=dataset_id,
        encoder_id=encoder_id,
        params=params,
        tool_version=__version__,
        user=user,
        host=audit.hostname(),
        pid=os.getpid(),
        images_total=images_total,
    )
    session.add(run)
    session.flush()
    return run


def images_done_before(session: Session, version: VocabVersion) -> int:
    """How many images earlier runs of ``version`` completed (durably)."""
    return int(
        session.scalar(
            select(func.max(IngestRun.images_done)).where(IngestRun.version_id == version.id)
        )
        or 0
    )


def instances_done_before(session: Session, version: VocabVersion) -> int:
    """How many points earlier runs of ``version`` wrote, as their checkpoints say."""
    return int(
        session.scalar(
            select(func.sum(IngestRun.instances_done)).where(IngestRun.version_id == version.id)
        )
        or 0
    )


def checkpoint(session: Session, run_id: str, images_done: int, instances_done: int) -> None:
    session.execute(
        update(IngestRun)
        .where(IngestRun.id == run_id)
        .values(images_done=images_done, instances_done=instances_done, heartbeat_at=utcnow())
    )


def finish_run(
    session: Session, run_id: str, status: str, error: str | None = None, **counts: int
) -> None:
    session.execute(
        update(IngestRun)
        .where(IngestRun.id == run_id)
        .values(status=status, error=error, ended_at=utcnow(), heartbeat_at=utcnow(), **counts)
    )
