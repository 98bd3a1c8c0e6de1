"""Ingest a labelled dataset into a domain as a new vocabulary version, in a single pass.

The version is pending while points are written with ``added_in = N``; readers only see
published versions, so a crashed ingest is invisible. Point ids are deterministic and
inserts never overwrite, so a resumed ingest adds no duplicates.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from knnvocab.catalog import audit
from knnvocab.catalog.classes import domain_classes, ensure_classes
from knnvocab.catalog.domains import (
    bind_encoder,
    check_domain_name,
    create_domain,
    describe_encoder,
    ensure_encoder,
    find_domain,
)
from knnvocab.catalog.models import Dataset, Domain, VocabVersion
from knnvocab.catalog.runs import checkpoint, images_done_before, start_run
from knnvocab.catalog.versions import (
    begin_version,
    busy_message,
    pending_version,
    version_prompts,
)
from knnvocab.datasets import open_dataset
from knnvocab.datasets.base import DatasetReader, SampleRef
from knnvocab.embed.prompts import PromptSet
from knnvocab.embed.spec import EncoderSpec
from knnvocab.errors import (
    ConfigError,
    DomainBusyError,
    EncoderMismatchError,
    StoreBusyError,
    VersionStateError,
)
from knnvocab.ingest.embedding import PointContext, Selection, Target, embed_samples
from knnvocab.ingest.finish import abort, publish
from knnvocab.ingest.manifest import ContentHasher, manifest_sha256
from knnvocab.ingest.types import IngestOptions, IngestSummary, NoProgress, Progress
from knnvocab.store.base import PointFilter
from knnvocab.types import LabelledImage
from knnvocab.workspace import Workspace

if TYPE_CHECKING:
    from knnvocab.embed.openclip import OpenClipEncoder

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One ingest run's identity, carried between short catalog transactions."""

    domain: str
    domain_id: int
    version_id: int
    number: int
    run_id: str
    dataset_id: int
    dataset: str
    collection: str
    selection: Selection
    start_index: int
    resumed: bool
    started: float


def ingest(
    ws: Workspace,
    domain: str,
    path: Path | str | DatasetReader,
    options: IngestOptions,
    encoder: EncoderSpec | None = None,
    progress: Progress | None = None,
) -> IngestSummary:
    """Embed every instance of the dataset at ``path`` (or an open reader) into ``domain``
    as a new version.

    ``encoder`` is required for a new domain (default: the settings' model and
    pretrained tag); an existing domain uses its own encoder, and a different one is
    refused. Bad input raises a KnnvocabError naming the file, after rolling back.
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
    refs = _only(reader.samples(), options.only_keys, reader)
    names = _selected_classes(reader, options.classes)
    manifest = manifest_sha256(reader, refs)
    _fail_fast_if_busy(ws, domain, options)
    model = _resolve_encoder(ws, domain, encoder)
    ws.store.ensure_collection(model.info.collection, model.dim)
    job = _begin_waiting(ws, domain, reader, refs, names, manifest, model, options, started)
    hasher = ContentHasher(reader)
    try:
        skipped = _embed_all(
            ws, job, reader, refs, model, options, hasher, progress or NoProgress()
        )
        return publish(ws, job, reader, refs, hasher, skipped)
    except BaseException as exc:
        try:
            abort(ws, job, exc)
        except Exception as cleanup:
            log.error(
                "could not clean up version %s of %r (%s); it stays pending: roll it back "
                "with `knnvocab vocab rollback %s`",
                job.number,
                domain,
                cleanup,
                domain,
            )
        raise


def _only(
    refs: list[SampleRef], keys: tuple[str, ...] | None, reader: DatasetReader
) -> list[SampleRef]:
    if keys is None:
        return refs
    unknown = set(keys) - {r.key for r in refs}
    if unknown:
        raise ConfigError(f"{reader.root}: no images with keys {sorted(unknown)[:5]}")
    wanted = set(keys)
    return [r for r in refs if r.key in wanted]


def _selected_classes(reader: DatasetReader, wanted: tuple[str, ...] | None) -> list[str]:
    if wanted is None:
        return list(reader.class_names)
    unknown = [c for c in wanted if c not in reader.class_names]
    if unknown:
        raise ConfigError(
            f"{reader.root}: classes {unknown} are not in the dataset's class list "
            f"({', '.join(reader.class_names[:30])}{', …' if len(reader.class_names) > 30 else ''})"
        )
    return [c for c in reader.class_names if c in wanted]


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


def _begin_waiting(
    ws: Workspace,
    domain: str,
    reader: DatasetReader,
    refs: list[SampleRef],
    names: list[str],
    manifest: str,
    model: OpenClipEncoder,
    options: IngestOptions,
    started: float,
) -> Job:
    """Take the domain's write lock (its store shard, then a pending version); with
    ``wait`` retry until the other process is done."""
    deadline = time.monotonic() + options.wait_timeout
    delay, told, retried = 0.5, False, False
    while True:
        try:
            ws.store.count(model.info.collection, PointFilter(domain=domain))
            with ws.catalog.session() as s:
                return _begin(s, ws, domain, reader, refs, names, manifest, model, options, started)
        except IntegrityError:
            # another process created the same new domain a moment ago: take it from there
            if retried:
                raise
            retried = True
        except (DomainBusyError, StoreBusyError) as exc:
            if not options.wait or time.monotonic() > deadline:
                raise
            if not told:  # say once why nothing happens
                log.warning("waiting (--wait): %s", exc)
                told = True
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)


def _begin(
    s: Session,
    ws: Workspace,
    domain_name: str,
    reader: DatasetReader,
    refs: list[SampleRef],
    names: list[str],
    manifest: str,
    model: OpenClipEncoder,
    options: IngestOptions,
    started: float,
) -> Job:
    user = ws.settings.user
    domain = find_domain(s, domain_name) or create_domain(s, domain_name, user)
    encoder_row = ensure_encoder(s, model.info)
    bind_encoder(domain, encoder_row)
    dataset_name = options.dataset_name or reader.root.name
    if options.resume:
        version, dataset = _pending_to_resume(s, domain, reader, manifest, options.templates)
    else:
        dataset = Dataset(
            domain_id=domain.id,
            name=dataset_name,
            format=reader.format,
            source=str(reader.root),
            manifest_sha256=manifest,
            file_counts={"images": len(refs)},
            options=reader.options(),
            class_names=list(reader.class_names),
        )
        s.add(dataset)
        s.flush()
        version = begin_version(
            s,
            domain,
            "ingest",
            encoder_row,
            user,
            message=options.message,
            dataset_id=dataset.id,
            params=options.recorded(),
            prompts=PromptSet(options.templates) if options.templates is not None else None,
        )
    start_index = images_done_before(s, version) if options.resume else 0
    run = start_run(
        s, version, dataset.id, encoder_row.id, user, options.recorded(), images_total=len(refs)
    )
    if options.resume:
        audit.record(
            s,
            "ingest.resume",
            user,
            domain=domain.name,
            version=version.number,
            detail={"run": run.id, "from_image": start_index},
        )
    return Job(
        domain=domain.name,
        domain_id=domain.id,
        version_id=version.id,
        number=version.number,
        run_id=run.id,
        dataset_id=dataset.id,
        dataset=dataset.name,
        collection=model.info.collection,
        selection=_selection(s, domain, reader, names, version, options.min_area),
        start_index=start_index,
        resumed=options.resume,
        started=started,
    )


def _pending_to_resume(
    s: Session,
    domain: Domain,
    reader: DatasetReader,
    manifest: str,
    templates: tuple[str, ...] | None,
) -> tuple[VocabVersion, Dataset]:
    version = pending_version(s, domain)
    if version is None or version.operation != "ingest" or version.dataset is None:
        raise VersionStateError(f"domain {domain.name!r} has no pending ingest to resume")
    dataset = version.dataset
    if dataset.manifest_sha256 != manifest or dataset.format != reader.format:
        raise ConfigError(
            f"{reader.root}: not the dataset pending version {version.number} was started on "
            f"({dataset.format} at {dataset.source}, or its files changed since); roll it back "
            f"with `knnvocab vocab rollback {domain.name}`"
        )
    if templates is not None and tuple(templates) != tuple(version.templates):
        raise ConfigError(
            f"pending version {version.number} of {domain.name!r} was started with other "
            "prompt templates; resume without --templates, or roll it back with "
            f"`knnvocab vocab rollback {domain.name}`"
        )
    return version, dataset


def _selection(
    s: Session,
    domain: Domain,
    reader: DatasetReader,
    names: list[str],
    version: VocabVersion,
    min_area: int,
) -> Selection:
    classes = ensure_classes(s, domain, names, version.number, version_prompts(version))
    retired = {n for n, c in domain_classes(s, domain).items() if c.removed_in is not None}
    targets: dict[int, Target] = {}
    skipped: dict[int, str] = {}
    for index, name in enumerate(reader.class_names):
        if name in retired:
            skipped[index] = "retired class"
        elif name in classes:
            targets[index] = Target(classes[name].class_id, name)
        else:
            skipped[index] = "not selected"
    return Selection(targets=targets, skipped_classes=skipped, min_area=min_area)


def _embed_all(
    ws: Workspace,
    job: Job,
    reader: DatasetReader,
    refs: list[SampleRef],
    model: OpenClipEncoder,
    options: IngestOptions,
    hasher: ContentHasher,
    progress: Progress,
) -> Counter[str]:
    """The single pass over the images, checkpointed so a resume skips finished ones.

    A worker thread reads, hashes and decodes the next batch while the encoder runs.
    """
    hasher.add(reader.metadata_files())
    context = PointContext(job.domain, job.dataset, job.number, job.run_id, model.info.fingerprint)
    skipped: Counter[str] = Counter()
    progress.start(len(refs), job.start_index)
    starts = list(range(0, len(refs), options.batch_size))

    def load(start: int) -> list[LabelledImage]:
        batch = refs[start : start + options.batch_size]
        for ref in batch:
            hasher.add(ref.files)
        return [reader.load(r) for i, r in enumerate(batch, start) if i >= job.start_index]

    done, instances, last_checkpoint = job.start_index, 0, time.monotonic()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="knnvocab-read") as reader_thread:
        pending = reader_thread.submit(load, starts[0]) if starts else None
        for n, start in enumerate(starts):
            samples = pending.result() if pending else []
            pending = reader_thread.submit(load, starts[n + 1]) if n + 1 < len(starts) else None
            if not samples:
                continue
            points = embed_samples(
                model,
                samples,
                job.selection,
                context,
                skipped,
                lambda ids: ws.store.existing(job.collection, job.domain, ids),
            )
            ws.store.insert(job.collection, job.domain, points)
            done = min(start + options.batch_size, len(refs))
            instances += len(points)
            progress.advance(len(samples), len(points))
            if time.monotonic() - last_checkpoint > options.checkpoint_seconds or done == len(refs):
                ws.store.flush()  # a checkpoint never claims more than is durable
                with ws.catalog.session() as s:
                    checkpoint(s, job.run_id, done, instances)
                last_checkpoint = time.monotonic()
    progress.finish()
    return skipped
