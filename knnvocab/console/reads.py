"""What the console's pages read from the catalog and the store, paged in the database
(a page of versions, of audit events, of a class's instances costs the page, not the
history)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from knnvocab.catalog.domains import get_domain
from knnvocab.catalog.models import ClassCount, Domain, VocabClass, VocabVersion
from knnvocab.errors import NotFoundError
from knnvocab.lifecycle import auditlog
from knnvocab.lifecycle.auditlog import AuditFilter, AuditRecord
from knnvocab.store.base import PointFilter, StoredPoint
from knnvocab.workspace import Workspace

#: versions the overview's chart samples (evenly, the head always among them)
CHART_VERSIONS = 60
#: classes the chart draws a line for (the largest at the head)
CHART_CLASSES = 8


@dataclass(frozen=True)
class Page:
    """Where a page is: ``offset``, ``limit`` and the ``total`` it is a page of."""

    offset: int
    limit: int
    total: int

    @property
    def previous(self) -> int | None:
        return max(0, self.offset - self.limit) if self.offset > 0 else None

    @property
    def next(self) -> int | None:
        after = self.offset + self.limit
        return after if after < self.total else None


@dataclass(frozen=True)
class ClassRow:
    """A class of a domain at the head: live, retired or purged, and its instances."""

    class_id: int
    name: str
    state: str
    instances: int
    added_in: int


def head_classes(s: Session, domain: Domain) -> list[ClassRow]:
    """Every class the domain has had, by class id, as it stands at the head."""
    counts: dict[int, ClassCount] = {}
    if domain.head_version:
        rows = s.scalars(
            select(ClassCount)
            .join(VocabVersion, ClassCount.version_id == VocabVersion.id)
            .where(
                VocabVersion.domain_id == domain.id,
                VocabVersion.number == domain.head_version,
            )
        )
        counts = {r.class_pk: r for r in rows}
    classes = s.scalars(
        select(VocabClass)
        .where(VocabClass.domain_id == domain.id, VocabClass.added_in <= domain.head_version)
        .order_by(VocabClass.class_id)
    )
    out = []
    for c in classes:
        row = counts.get(c.id)
        state = "purged" if row is None else ("live" if row.live else "retired")
        out.append(ClassRow(c.class_id, c.name, state, row.instances if row else 0, c.added_in))
    return out


def chart_series(
    s: Session, domain: Domain, classes: list[ClassRow]
) -> tuple[list[int], dict[str, list[int]]]:
    """Sampled published version numbers and, for the largest classes at the head, their
    instances at each (0 where a class was absent or retired)."""
    numbers = list(
        s.scalars(
            select(VocabVersion.number)
            .where(VocabVersion.domain_id == domain.id, VocabVersion.state == "published")
            .order_by(VocabVersion.number)
        )
    )
    if len(numbers) > CHART_VERSIONS:
        step = (len(numbers) - 1) / (CHART_VERSIONS - 1)
        numbers = sorted({numbers[round(i * step)] for i in range(CHART_VERSIONS)})
    drawn = [c for c in classes if c.instances > 0]
    top = sorted(drawn, key=lambda c: (-c.instances, c.class_id))[:CHART_CLASSES]
    names = {c.name for c in top}
    series = {c.name: [0] * len(numbers) for c in top}
    at = {n: i for i, n in enumerate(numbers)}
    rows = s.execute(
        select(VocabVersion.number, VocabClass.name, ClassCount.instances, ClassCount.live)
        .join(ClassCount, ClassCount.version_id == VocabVersion.id)
        .join(VocabClass, ClassCount.class_pk == VocabClass.id)
        .where(
            VocabVersion.domain_id == domain.id,
            VocabVersion.number.in_(numbers),
            VocabClass.name.in_(sorted(names)),
        )
    )
    for number, name, instances, live in rows:
        series[name][at[number]] = instances if live else 0
    return numbers, series


def versions_page(
    s: Session, domain: Domain, offset: int, limit: int
) -> tuple[list[VocabVersion], Page]:
    """A page of the domain's versions, newest first."""
    total = s.scalar(
        select(func.count()).select_from(VocabVersion).where(VocabVersion.domain_id == domain.id)
    )
    rows = list(
        s.scalars(
            select(VocabVersion)
            .where(VocabVersion.domain_id == domain.id)
            .order_by(VocabVersion.number.desc())
            .offset(offset)
            .limit(limit)
        )
    )
    return rows, Page(offset, limit, int(total or 0))


def version_changes(s: Session, versions: list[VocabVersion]) -> dict[int, list[str]]:
    """Per version id, what it did to each class it touched (``+3 car``, ``-2 dog``,
    ``dog retired``), from its class counts."""
    out: dict[int, list[str]] = {v.id: [] for v in versions}
    rows = s.execute(
        select(ClassCount.version_id, VocabClass.name, ClassCount.added, ClassCount.removed)
        .join(VocabClass, ClassCount.class_pk == VocabClass.id)
        .where(
            ClassCount.version_id.in_(list(out)),
            or_(ClassCount.added > 0, ClassCount.removed > 0),
        )
        .order_by(VocabClass.class_id)
    )
    for version_id, name, added, removed in rows:
        if added:
            out[version_id].append(f"+{added} {name}")
        if removed:
            out[version_id].append(f"−{removed} {name}")
    return out


def audit_page(
    s: Session,
    domain: str,
    offset: int,
    limit: int,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
) -> tuple[list[AuditRecord], Page]:
    """A page of the domain's audit events, newest first (``AuditFilter`` says which)."""
    which = AuditFilter(domain, since, action, actor)
    records, total = auditlog.audit_page(s, which, offset, limit, newest_first=True)
    return records, Page(offset, limit, total)


def find_class(s: Session, domain: Domain, name: str) -> VocabClass:
    row = s.scalar(
        select(VocabClass).where(VocabClass.domain_id == domain.id, VocabClass.name == name)
    )
    if row is None:
        raise NotFoundError(f"domain {domain.name!r} has no class {name!r}")
    return row


def lived_in(s: Session, cls: VocabClass) -> list[tuple[int, int]]:
    """The ranges of published versions ``(first, last)`` at which the class was live."""
    rows = s.execute(
        select(VocabVersion.number, ClassCount.live)
        .join(ClassCount, ClassCount.version_id == VocabVersion.id)
        .where(ClassCount.class_pk == cls.id, VocabVersion.state == "published")
        .order_by(VocabVersion.number)
    )
    ranges: list[tuple[int, int]] = []
    for number, live in rows:
        if not live:
            continue
        if ranges and ranges[-1][1] == number - 1:
            ranges[-1] = (ranges[-1][0], number)
        else:
            ranges.append((number, number))
    return ranges


def instances_page(
    ws: Workspace, domain: str, class_id: int, offset: int, limit: int
) -> tuple[list[StoredPoint], bool]:
    """A page of every point the class ever had (retired ones too) at the head's
    encoder, and whether there is a next page. The store scrolls in pages, so a page
    costs what comes before it, not the class's size."""
    with ws.catalog.session() as s:
        collection = _collection(s, domain)
    if collection is None:
        return [], False
    points = ws.store.scroll(collection, PointFilter(domain, class_ids=(class_id,)))
    chosen = list(itertools.islice(points, offset, offset + limit + 1))
    return chosen[:limit], len(chosen) > limit


def _collection(s: Session, domain: str) -> str | None:
    row = get_domain(s, domain)
    return row.encoder.collection if row.encoder is not None else None
