"""What an ingest settles before its single pass: the dataset's images and classes, the
domain bound to its encoder, and — under the domain's write lock, as the versioned
change's ``prepare`` step — the domain's quota, the dataset row, the run, and which
classes are embedded."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from knnvocab.catalog import audit
from knnvocab.catalog.classes import domain_classes, ensure_classes
from knnvocab.catalog.domains import bind_encoder, create_domain, ensure_encoder, find_domain
from knnvocab.catalog.models import Dataset, Domain, Encoder, VocabVersion
from knnvocab.catalog.runs import images_done_before, instances_done_before, start_run
from knnvocab.catalog.versions import version_prompts
from knnvocab.datasets.base import DatasetReader, SampleRef
from knnvocab.embed.spec import EncoderInfo
from knnvocab.errors import ConfigError, VersionStateError
from knnvocab.ingest.embedding import Selection, Target
from knnvocab.ingest.quota import QuotaCheck, check_quota
from knnvocab.ingest.types import IngestOptions
from knnvocab.workspace import Workspace


def only(
    refs: list[SampleRef], keys: tuple[str, ...] | None, reader: DatasetReader
) -> list[SampleRef]:
    """The images an ingest reads: every one, or those with ``keys``."""
    if keys is None:
        return refs
    unknown = set(keys) - {r.key for r in refs}
    if unknown:
        raise ConfigError(f"{reader.root}: no images with keys {sorted(unknown)[:5]}")
    wanted = set(keys)
    return [r for r in refs if r.key in wanted]


def selected_classes(reader: DatasetReader, wanted: tuple[str, ...] | None) -> list[str]:
    """The dataset classes that enter the vocabulary: all, or the ``wanted`` ones."""
    if wanted is None:
        return list(reader.class_names)
    unknown = [c for c in wanted if c not in reader.class_names]
    if unknown:
        raise ConfigError(
            f"{reader.root}: classes {unknown} are not in the dataset's class list "
            f"({', '.join(reader.class_names[:30])}{', …' if len(reader.class_names) > 30 else ''})"
        )
    return [c for c in reader.class_names if c in wanted]


def bind_domain(ws: Workspace, name: str, info: EncoderInfo, actor: str, resume: bool) -> Encoder:
    """The domain (created on first ingest) bound to the encoder ``info`` describes; its
    catalog row. Another process creating the same new domain at once is not an error."""
    for attempt in (1, 2):
        try:
            with ws.catalog.session() as s:
                domain = find_domain(s, name)
                if domain is None and resume:
                    raise VersionStateError(f"domain {name!r} has no pending ingest to resume")
                domain = domain or create_domain(s, name, actor)
                encoder = ensure_encoder(s, info)
                bind_encoder(domain, encoder)
                return encoder
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@dataclass
class IngestPlan:
    """One ingest's dataset and what was settled under the lock (by `prepare`)."""

    reader: DatasetReader
    refs: list[SampleRef]
    names: list[str]
    manifest: str
    options: IngestOptions
    actor: str
    dataset_id: int = 0
    dataset: str = ""
    start_index: int = 0
    #: points earlier runs of a resumed version checkpointed
    instances_before: int = 0
    selection: Selection = field(default_factory=lambda: Selection({}, {}, 0))
    #: what the ingest adds, counted before it starts when the domain has a quota
    quota: QuotaCheck | None = None

    def prepare(self, s: Session, domain: Domain, version: VocabVersion, run_id: str) -> None:
        """The quota checked again, the dataset row (or, resuming, the one the version
        started on), the run, and the selection of classes, in the transaction that takes
        the version."""
        check_quota(s, domain, self.quota, version.number if self.options.resume else None)
        if self.options.resume:
            dataset = self._resumable(domain, version)
            self.start_index = images_done_before(s, version)
            self.instances_before = instances_done_before(s, version)
        else:
            dataset = self._new_dataset(s, domain)
            version.dataset_id = dataset.id
        self.dataset_id, self.dataset = dataset.id, dataset.name
        params = self.options.recorded()
        start_run(
            s, version, dataset.id, version.encoder_id, self.actor, params, len(self.refs), run_id
        )
        if self.options.resume:
            detail = {"run": run_id, "from_image": self.start_index}
            audit.record(
                s,
                "ingest.resume",
                self.actor,
                domain=domain.name,
                version=version.number,
                detail=detail,
            )
        self.selection = self._selection(s, domain, version)

    def _new_dataset(self, s: Session, domain: Domain) -> Dataset:
        reader = self.reader
        dataset = Dataset(
            domain_id=domain.id,
            name=self.dataset_name(),
            format=reader.format,
            source=str(reader.root),
            manifest_sha256=self.manifest,
            file_counts={"images": len(self.refs)},
            options=reader.options(),
            class_names=list(reader.class_names),
        )
        s.add(dataset)
        s.flush()
        return dataset

    def _resumable(self, domain: Domain, version: VocabVersion) -> Dataset:
        dataset = version.dataset
        if dataset is None:
            raise VersionStateError(f"domain {domain.name!r} has no pending ingest to resume")
        rollback = f"roll it back with `knnvocab vocab rollback {domain.name}`"
        if dataset.manifest_sha256 != self.manifest or dataset.format != self.reader.format:
            raise ConfigError(
                f"{self.reader.root}: not the dataset pending version {version.number} was "
                f"started on ({dataset.format} at {dataset.source}, or its files changed "
                f"since); {rollback}"
            )
        templates = self.options.templates
        if templates is not None and tuple(templates) != tuple(version.templates):
            raise ConfigError(
                f"pending version {version.number} of {domain.name!r} was started with other "
                f"prompt templates; resume without --templates, or {rollback}"
            )
        return dataset

    def dataset_name(self) -> str:
        """The name a new dataset row (and every point of this ingest) gets."""
        return self.options.dataset_name or self.reader.root.name

    def preview(self, s: Session, domain: Domain) -> Selection:
        """The instances `prepare` will select, as the domain stands now, without creating
        classes (class ids are taken under the lock; picking instances needs none): to
        count what the ingest adds before it starts."""
        return self._select(s, domain, dict.fromkeys(self.names, 0))

    def _selection(self, s: Session, domain: Domain, version: VocabVersion) -> Selection:
        classes = ensure_classes(s, domain, self.names, version.number, version_prompts(version))
        return self._select(s, domain, {name: c.class_id for name, c in classes.items()})

    def _select(self, s: Session, domain: Domain, class_ids: dict[str, int]) -> Selection:
        retired = {n for n, c in domain_classes(s, domain).items() if c.removed_in is not None}
        targets: dict[int, Target] = {}
        skipped: dict[int, str] = {}
        for index, name in enumerate(self.reader.class_names):
            if name in retired:
                skipped[index] = "retired class"
            elif name in class_ids:
                targets[index] = Target(class_ids[name], name)
            else:
                skipped[index] = "not selected"
        return Selection(targets=targets, skipped_classes=skipped, min_area=self.options.min_area)
