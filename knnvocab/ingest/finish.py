"""The end of an ingest: publish the pending version, or roll it back / leave it resumable."""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

from knnvocab.catalog import audit
from knnvocab.catalog.classes import domain_classes
from knnvocab.catalog.models import Dataset, Domain, VocabVersion
from knnvocab.catalog.runs import finish_run
from knnvocab.catalog.versions import ClassChange, close_version, publish_version
from knnvocab.datasets.base import DatasetReader, SampleRef
from knnvocab.ingest.manifest import ContentHasher
from knnvocab.ingest.types import IngestSummary
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace

if TYPE_CHECKING:
    from knnvocab.ingest.run import Job


def publish(
    ws: Workspace,
    job: Job,
    reader: DatasetReader,
    refs: list[SampleRef],
    hasher: ContentHasher,
    skipped: Counter[str],
) -> IngestSummary:
    """Count what the version added (from the store itself), then publish it."""
    ws.store.flush()
    ws.store.optimize(job.collection, job.domain)
    added = ws.store.counts_by(
        job.collection, PointFilter(domain=job.domain, added_in=job.number), "class_id"
    )
    with ws.catalog.session() as s:
        domain = s.get_one(Domain, job.domain_id)
        version = s.get_one(VocabVersion, job.version_id)
        classes = domain_classes(s, domain)
        by_id = {c.class_id: c for c in classes.values()}
        changes = {by_id[int(cid)].id: ClassChange(added=n) for cid, n in added.items()}
        targets = {t.label for t in job.selection.targets.values()}
        per_class = {name: int(added.get(classes[name].class_id, 0)) for name in sorted(targets)}
        new = sorted(n for n, c in classes.items() if c.added_in == job.number)
        summary = IngestSummary(
            domain=job.domain,
            version=job.number,
            dataset=job.dataset,
            images=len(refs),
            instances_added=per_class,
            classes_added=new,
            skipped={why: n for why, n in skipped.items() if n},
            resumed=job.resumed,
            seconds=round(time.monotonic() - job.started, 3),
        )
        dataset = s.get_one(Dataset, job.dataset_id)
        dataset.content_sha256 = hasher.hexdigest()
        dataset.file_counts = {
            "images": len(refs),
            "files": len(hasher.files),
            "bytes": hasher.bytes,
        }
        publish_version(s, domain, version, changes, summary.to_json())
        finish_run(
            s, job.run_id, "succeeded", images_done=len(refs), instances_done=summary.total_added
        )
        audit.record(
            s,
            "ingest.publish",
            ws.settings.user,
            domain=job.domain,
            version=job.number,
            detail={
                "dataset": job.dataset,
                "content_sha256": dataset.content_sha256,
                "classes_added": new,
                "instances_added": summary.total_added,
                "run": job.run_id,
            },
        )
    return summary


def abort(ws: Workspace, job: Job, exc: BaseException) -> None:
    """Interrupted: leave the version pending (resumable). Failed: delete its points and
    mark it failed. Never publishes."""
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        ws.store.flush()
        with ws.catalog.session() as s:
            finish_run(s, job.run_id, "interrupted", error=reason)
            audit.record(
                s,
                "ingest.interrupt",
                ws.settings.user,
                domain=job.domain,
                version=job.number,
                detail={"run": job.run_id, "reason": reason},
            )
        return
    ws.store.delete(job.collection, PointFilter(domain=job.domain, added_in=job.number))
    ws.store.flush()
    with ws.catalog.session() as s:
        domain = s.get_one(Domain, job.domain_id)
        version = s.get_one(VocabVersion, job.version_id)
        close_version(s, domain, version, "failed", reason)
        finish_run(s, job.run_id, "failed", error=reason)
        audit.record(
            s,
            "ingest.fail",
            ws.settings.user,
            domain=job.domain,
            version=job.number,
            detail={"run": job.run_id, "error": reason, "points": "deleted"},
        )
