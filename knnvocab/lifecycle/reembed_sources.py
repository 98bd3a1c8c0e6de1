"""The datasets a reembed reads again: each one's recorded source is checked against the
content sha256 its ingest recorded before anything is embedded, and its instances are
re-read and embedded with ingest's own single-pass code (`knnvocab.ingest.embedding`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from knnvocab.catalog.models import Dataset, Domain, VocabVersion
from knnvocab.datasets import open_dataset
from knnvocab.datasets.base import DatasetReader, SampleRef
from knnvocab.errors import DatasetError, KnnvocabError
from knnvocab.ingest.embedding import PointContext, Selection, Target, embed_samples
from knnvocab.ingest.manifest import ContentHasher
from knnvocab.ingest.opening import only
from knnvocab.store.base import StoredPoint
from knnvocab.store.payload import PointPayload
from knnvocab.types import Instances, LabelledImage

if TYPE_CHECKING:
    from knnvocab.embed.openclip import OpenClipEncoder


@dataclass(frozen=True)
class Source:
    """Where the points of one dataset name came from, as its latest published ingest
    recorded it (format, folder, reader options, the images it read, content sha256)."""

    name: str
    dataset_id: int
    format: str
    root: str
    options: dict[str, Any]
    sha256: str | None
    only_keys: tuple[str, ...] | None

    def open(self, max_pixels: int) -> tuple[DatasetReader, list[SampleRef]]:
        """The reader and the images the ingest read."""
        given = {k: v for k, v in self.options.items() if v is not None}
        reader = open_dataset(self.format, Path(self.root), max_pixels=max_pixels, **given)
        return reader, only(reader.samples(), self.only_keys, reader)

    def problem(self, max_pixels: int) -> str | None:
        """Why this source cannot be read again as it was ingested (None: it can)."""
        if self.sha256 is None:
            return "its ingest recorded no content sha256"
        if not Path(self.root).exists():
            return f"its source {self.root} is missing"
        try:
            reader, refs = self.open(max_pixels)
            hasher = ContentHasher(reader)
            hasher.add(reader.metadata_files())
            for ref in refs:
                hasher.add(ref.files)
        except (KnnvocabError, OSError) as exc:
            return f"its source {self.root} cannot be read ({exc})"
        now = hasher.hexdigest()
        if now != self.sha256:
            return (
                f"its source {self.root} changed since it was ingested (content sha256 "
                f"{self.sha256[:12]} recorded, {now[:12]} now)"
            )
        return None


def recorded_sources(s: Session, domain: Domain, names: set[str]) -> dict[str, Source]:
    """Per dataset name, the source of the latest published ingest that used it."""
    rows = s.execute(
        select(Dataset, VocabVersion.params)
        .join(VocabVersion, VocabVersion.dataset_id == Dataset.id)
        .where(
            Dataset.domain_id == domain.id,
            Dataset.name.in_(sorted(names)),
            VocabVersion.state == "published",
        )
        .order_by(VocabVersion.number)
    )
    found: dict[str, Source] = {}
    for dataset, params in rows:
        keys = params.get("only_keys")
        found[dataset.name] = Source(
            name=dataset.name,
            dataset_id=dataset.id,
            format=dataset.format,
            root=dataset.source,
            options=dict(dataset.options),
            sha256=dataset.content_sha256,
            only_keys=tuple(keys) if keys is not None else None,
        )
    return found


@dataclass(frozen=True)
class Wanted:
    """One stored instance to embed again: its image and instance keys, the key its new
    point id is made from (a restored copy's carries ``@restored{N}``, as restore made
    it), its new id, its payload as stored (links remapped), and whether it is visible
    at the head (it gets the reembed's version) or history kept as it was."""

    image: str
    instance: str
    id_key: str
    new_id: str
    payload: PointPayload
    visible: bool = True


def _only(sample: LabelledImage, wanted: Sequence[Wanted], root: Path) -> LabelledImage:
    """``sample`` with just the ``wanted`` instances, keyed by their id keys."""
    index = {k: i for i, k in enumerate(sample.instances.keys)}
    lost = [w.instance for w in wanted if w.instance not in index]
    if lost:
        raise DatasetError(root, f"image {sample.key!r} has no instance {lost[0]!r} any more")
    rows = [index[w.instance] for w in wanted]
    instances = Instances(
        masks=sample.instances.masks[rows],
        class_ids=sample.instances.class_ids[rows],
        keys=tuple(w.id_key for w in wanted),
    )
    return LabelledImage(sample.key, sample.image, instances, sample.files)


def embed_source(
    model: OpenClipEncoder,
    reader: DatasetReader,
    refs: list[SampleRef],
    wanted: Sequence[Wanted],
    context: PointContext,
    stored: Callable[[list[str]], set[str]],
    batch_size: int,
) -> Iterator[tuple[int, list[tuple[Wanted, StoredPoint]]]]:
    """Embed the ``wanted`` instances of one source, ``batch_size`` images per forward;
    yields per batch the number of images and each new point with what it replaces
    (instances already ``stored`` are not embedded again)."""
    by_image: dict[str, list[Wanted]] = {}
    for w in wanted:
        by_image.setdefault(w.image, []).append(w)
    todo = [r for r in refs if r.key in by_image]
    absent = sorted(set(by_image) - {r.key for r in todo})
    if absent:
        raise DatasetError(reader.root, f"no image {absent[0]!r} any more")
    by_id = {w.new_id: w for w in wanted}
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        samples = [_only(reader.load(r), by_image[r.key], reader.root) for r in batch]
        classes = {int(c) for smp in samples for c in smp.instances.class_ids}
        # every wanted instance is embedded: the class of its new point is the stored one
        selection = Selection({c: Target(0, "") for c in classes}, {}, min_area=0)
        skipped: Counter[str] = Counter()
        points = embed_samples(model, samples, selection, context, skipped, stored)
        lost = {why: n for why, n in skipped.items() if why != "already stored"}
        if lost:
            raise DatasetError(reader.root, f"instances not embedded again: {lost}")
        yield len(batch), [(by_id[p.id], p) for p in points]
