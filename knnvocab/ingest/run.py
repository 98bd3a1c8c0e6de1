"""Ingest a labelled dataset into a domain as a new vocabulary version, in a single pass.

The version is pending while points are written with ``added_in = N``; readers only see
published versions, so a crashed ingest is invisible. Point ids are deterministic and
inserts never overwrite, so a resumed ingest adds no duplicates.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from knnvocab.catalog.classes import domain_classes
from knnvocab.catalog.domains import check_domain_name, describe_encoder, find_domain
from knnvocab.catalog.models import Dataset, Domain, VocabVersion
from knnvocab.catalog.runs import checkpoint, finish_run
from knnvocab.catalog.versions import ClassChange, busy_message, pending_version
from knnvocab.changes import Change, Opening, retry_while_busy, versioned_change
from knnvocab.datasets import open_dataset
from knnvocab.datasets.base import DatasetReader
from knnvocab.embed.prompts import PromptSet
from knnvocab.embed.spec import EncoderSpec
from knnvocab.errors import DomainBusyError, EncoderMismatchError
from knnvocab.faults import fill_disk
from knnvocab.ingest.embedding import PointContext, embed_samples
from knnvocab.ingest.manifest import ContentHasher, manifest_sha256
from knnvocab.ingest.opening import IngestPlan, bind_domain, only, selected_classes
from knnvocab.ingest.quota import count_for_quota
from knnvocab.ingest.types import IngestOptions, IngestSummary
from knnvocab.progress import NoProgress, Progress
from knnvocab.store.base import PointFilter
from knnvocab.types import LabelledImage
from knnvocab.workspace import Workspace

if TYPE_CHECKING:
    from knnvocab.embed.openclip import OpenClipEncoder

log = logging.getLogger(__name__)


def ingest(
    ws: Workspace,
    domain: str,
    path: Path | str | DatasetReader,
    options: IngestOptions,
    encoder: EncoderSpec | None = None,
    progress: Progress | None = None,
    *,
    actor: str,
) -> IngestSummary:
    """Embed every instance of the dataset at ``path`` (or an open reader) into ``domain``
    as a new version, made by ``actor``.

    ``encoder`` is required for a new domain (default: the settings' model and
    pretrained tag); an existing domain uses its own encoder, and a different one is
    refused. Bad input raises a KnnvocabError naming the file, after rolling back; an
    interruption leaves the version pending for ``options.resume``. Into a domain with a
    quota, an ingest that would exceed it is refused (QuotaExceededError) before anything
    is embedded or a version is taken.
    """
    check_domain_name(domain)
    started = time.monotonic()
    reader = (
        path
        if isinstance(path, DatasetReader)
        else open_dataset(
            options.format,
            Path(path),
            max_pixels=ws.settings.max_image_pixels,
            **options.reader_options,
        )
    )
    refs = only(reader.samples(), options.only_keys, reader)
    plan = IngestPlan(
        reader,
        refs,
        selected_classes(reader, options.classes),
        manifest_sha256(reader, refs),
        options,
        actor,
    )
    _fail_fast_if_busy(ws, domain, options)
    model = _resolve_encoder(ws, domain, encoder)
    ws.store.ensure_collection(model.info.collection, model.dim)
    wait = options.wait_timeout if options.wait else None
    # the store is ours before the catalog records anything (a new domain included)
    retry_while_busy(lambda: ws.store.open_domain(model.info.collection, domain), wait)
    plan.quota = count_for_quota(ws, plan, domain, model.info)  # before any embedding
    opening = Opening(
        encoder=bind_domain(ws, domain, model.info, actor, options.resume),
        message=options.message,
        params=options.recorded(),
        prompts=PromptSet(options.templates) if options.templates is not None else None,
    )
    with versioned_change(
        ws,
        domain,
        "ingest",
        actor,
        opening,
        prepare=plan.prepare,
        resume=options.resume,
        resumable=True,
        wait=wait,
    ) as change:
        change.on_fail.append(_end_run(change))
        if change.resumed:
            _check_checkpoint(change, plan)
        hasher = ContentHasher(reader)
        skipped = _embed_all(change, plan, model, hasher, progress or NoProgress())
        summary = _publish(change, plan, hasher, skipped, started)
    return summary


def _check_checkpoint(change: Change, plan: IngestPlan) -> None:
    """A resume starts after the images earlier runs checkpointed, unless the store no
    longer holds the points they wrote (a failure undid them but the catalog was gone
    before it could record that): then from the first image — instances still stored
    are skipped by id, so nothing is embedded twice or lost."""
    flt = PointFilter(domain=change.domain, added_in=change.number)
    stored = change.ws.store.count(change.collection, flt)
    if plan.start_index and stored < plan.instances_before:
        log.warning(
            "version %s holds %s of the %s points its checkpoints claim: resuming from the "
            "first image",
            change.number,
            stored,
            plan.instances_before,
        )
        plan.start_index = 0


def _fail_fast_if_busy(ws: Workspace, domain: str, options: IngestOptions) -> None:
    """Refuse before loading a model when another version is pending (unless asked to)."""
    if options.resume or options.wait:
        return
    with ws.catalog.session() as s:
        row = find_domain(s, domain)
        pending = pending_version(s, row) if row is not None else None
        if row is not None and pending is not None:
            raise DomainBusyError(busy_message(s, row, pending))


def _resolve_encoder(ws: Workspace, domain: str, spec: EncoderSpec | None) -> OpenClipEncoder:
    with ws.catalog.session() as s:
        row = find_domain(s, domain)
        bound = row.encoder if row is not None else None
    if bound is None:
        return ws.encoder(spec or EncoderSpec(ws.settings.model, pretrained=ws.settings.pretrained))
    if spec is None:
        return ws.encoder_of(bound)
    model = ws.encoder(spec)
    if model.info.fingerprint != bound.fingerprint:
        raise EncoderMismatchError(
            f"domain {domain!r} is bound to encoder {describe_encoder(bound)}, but this run "
            f"asks for {spec.describe()} [{model.info.fingerprint[:12]}]; vectors of two "
            "encoders are never mixed — drop the encoder options to use the domain's own"
        )
    return model


def _end_run(change: Change) -> Callable[[Session, str, str], None]:
    """Ends the ingest's run (its checkpoints' row) with the version."""

    def end(s: Session, state: str, reason: str) -> None:
        finish_run(s, change.run_id, "interrupted" if state == "interrupted" else "failed", reason)

    return end


def _embed_all(
    change: Change,
    plan: IngestPlan,
    model: OpenClipEncoder,
    hasher: ContentHasher,
    progress: Progress,
) -> Counter[str]:
    """The single pass over the images, checkpointed so a resume skips finished ones.

    A worker thread reads, hashes and decodes the next batch while the encoder runs.
    """
    ws, reader, refs, size = change.ws, plan.reader, plan.refs, plan.options.batch_size
    hasher.add(reader.metadata_files())
    context = PointContext(
        change.domain, plan.dataset, change.number, change.run_id, model.info.fingerprint
    )
    skipped: Counter[str] = Counter()
    progress.start(len(refs), plan.start_index)
    starts = list(range(0, len(refs), size))

    def load(start: int) -> list[LabelledImage]:
        batch = refs[start : start + size]
        for ref in batch:
            hasher.add(ref.files)
        return [reader.load(r) for i, r in enumerate(batch, start) if i >= plan.start_index]

    def stored(ids: list[str]) -> set[str]:
        return ws.store.existing(change.collection, change.domain, ids)

    instances, last_checkpoint = 0, time.monotonic()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="knnvocab-read") as reader_thread:
        pending = reader_thread.submit(load, starts[0]) if starts else None
        for n, start in enumerate(starts):
            samples = pending.result() if pending else []
            pending = reader_thread.submit(load, starts[n + 1]) if n + 1 < len(starts) else None
            if not samples:
                continue
            points = embed_samples(model, samples, plan.selection, context, skipped, stored)
            ws.store.insert(change.collection, change.domain, points)
            fill_disk(ws.settings, "ingest.after_batch")
            done = min(start + size, len(refs))
            instances += len(points)
            progress.advance(len(samples), len(points))
            due = time.monotonic() - last_checkpoint > plan.options.checkpoint_seconds
            if due or done == len(refs):
                ws.store.flush()  # a checkpoint never claims more than is durable
                with ws.catalog.session() as s:
                    checkpoint(s, change.run_id, done, instances)
                last_checkpoint = time.monotonic()
    progress.finish()
    return skipped


def _publish(
    change: Change,
    plan: IngestPlan,
    hasher: ContentHasher,
    skipped: Counter[str],
    started: float,
) -> IngestSummary:
    """Count what the version added (from the store itself), then publish it."""
    ws = change.ws
    ws.store.flush()
    ws.store.optimize(change.collection, change.domain)
    flt = PointFilter(domain=change.domain, added_in=change.number)
    added = ws.store.counts_by(change.collection, flt, "class_id")
    with ws.catalog.session() as s:
        classes = domain_classes(s, s.get_one(Domain, change.domain_id))
    by_id = {c.class_id: c for c in classes.values()}
    changes = {by_id[int(cid)].id: ClassChange(added=n) for cid, n in added.items()}
    targets = {t.label for t in plan.selection.targets.values()}
    per_class = {name: int(added.get(classes[name].class_id, 0)) for name in sorted(targets)}
    new = sorted(n for n, c in classes.items() if c.added_in == change.number)
    summary = IngestSummary(
        domain=change.domain,
        version=change.number,
        dataset=plan.dataset,
        images=len(plan.refs),
        instances_added=per_class,
        classes_added=new,
        skipped={why: n for why, n in skipped.items() if n},
        resumed=change.resumed,
        seconds=round(time.monotonic() - started, 3),
    )
    content = hasher.hexdigest()

    def record(s: Session, _domain: Domain, _version: VocabVersion) -> None:
        dataset = s.get_one(Dataset, plan.dataset_id)
        dataset.content_sha256 = content
        dataset.file_counts = {
            "images": len(plan.refs),
            "files": len(hasher.files),
            "bytes": hasher.bytes,
        }
        finish_run(
            s,
            change.run_id,
            "succeeded",
            images_done=len(plan.refs),
            instances_done=summary.total_added,
        )

    detail = {
        "dataset": plan.dataset,
        "content_sha256": content,
        "classes_added": new,
        "instances_added": summary.total_added,
    }
    change.publish(changes, summary.to_json(), detail, then=record)
    return summary
