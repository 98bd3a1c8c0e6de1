"""Reading a domain's vocabulary history: the log, one version's vocabulary, diffs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from knnvocab.catalog.domains import encoder_spec, get_domain
from knnvocab.catalog.models import Domain, VocabVersion
from knnvocab.catalog.versions import get_version, readable_version, snapshot
from knnvocab.workspace import Workspace


@dataclass(frozen=True)
class ClassState:
    """One class at one version."""

    class_id: int
    name: str
    live: bool
    instances: int
    added: int
    removed: int
    added_in: int


@dataclass(frozen=True)
class VocabSnapshot:
    """A domain's vocabulary as it was at a published version."""

    domain: str
    version: int
    classes: list[ClassState]
    reproducible: bool = True  # False: points it showed were purged or lost since

    @property
    def live(self) -> list[ClassState]:
        return [c for c in self.classes if c.live]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VocabDiff:
    """What changed between two versions ``a`` and ``b`` of a domain."""

    domain: str
    a: int
    b: int
    added: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # purged from the vocabulary
    count_changes: dict[str, tuple[int, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["count_changes"] = {
            k: {"from": v[0], "to": v[1]} for k, v in self.count_changes.items()
        }
        return data


@dataclass(frozen=True)
class VersionRecord:
    """One entry of a domain's history, with its provenance."""

    number: int
    state: str
    operation: str
    created_at: datetime
    finished_at: datetime | None
    user: str
    host: str
    message: str
    tool_version: str
    reproducible: bool
    error: str | None
    encoder: dict[str, Any]
    dataset: dict[str, Any] | None
    params: dict[str, Any]
    classes_added: list[str]
    classes_retired: list[str]
    classes_restored: list[str]
    classes_purged: list[str]
    instances_added: dict[str, int]
    instances_removed: dict[str, int]
    points_purged: dict[str, int]  # per class, every point a purge deleted (hidden ones too)
    target: dict[str, str]  # what a retire / restore / purge acted on: {"class"|"dataset": name}
    templates: list[str]  # zero-shot prompt templates this version is read with
    prompt_rule: str  # how a class name fills a template's {} (embed/prompts.py NAME_RULES)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return data


def _states(session: Session, version: VocabVersion | None) -> dict[str, ClassState]:
    if version is None:
        return {}
    return {
        c.vocab_class.name: ClassState(
            class_id=c.vocab_class.class_id,
            name=c.vocab_class.name,
            live=c.live,
            instances=c.instances,
            added=c.added,
            removed=c.removed,
            added_in=c.vocab_class.added_in,
        )
        for c in snapshot(session, version)
    }


def _diff(
    domain: str, a: int, b: int, old: dict[str, ClassState], new: dict[str, ClassState]
) -> VocabDiff:
    added = sorted(n for n, c in new.items() if c.live and n not in old)
    retired = sorted(n for n, c in new.items() if not c.live and n in old and old[n].live)
    restored = sorted(n for n, c in new.items() if c.live and n in old and not old[n].live)
    removed = sorted(n for n in old if n not in new)
    counts = {
        n: (old[n].instances if n in old else 0, c.instances)
        for n, c in new.items()
        if (old[n].instances if n in old else 0) != c.instances
    }
    counts.update({n: (old[n].instances, 0) for n in removed if old[n].instances})
    return VocabDiff(domain, a, b, added, retired, restored, removed, dict(sorted(counts.items())))


def _encoder_json(version: VocabVersion) -> dict[str, Any]:
    enc = version.encoder
    spec = encoder_spec(enc)
    return {
        "fingerprint": enc.fingerprint,
        "model": enc.model,
        "source": enc.source,
        "pretrained": enc.pretrained,
        "checkpoint": enc.checkpoint,
        "untrained_seed": spec.seed if spec.untrained else None,
        "weights_sha256": enc.weights_sha256,
        "method": enc.method,
        "resolution": enc.resolution,
        "dim": enc.dim,
    }


def _dataset_json(version: VocabVersion) -> dict[str, Any] | None:
    ds = version.dataset
    if ds is None:
        return None
    return {
        "name": ds.name,
        "format": ds.format,
        "source": ds.source,
        "content_sha256": ds.content_sha256,
        "manifest_sha256": ds.manifest_sha256,
        "file_counts": ds.file_counts,
        "options": ds.options,
    }


def _record(version: VocabVersion, diff: VocabDiff, new: dict[str, ClassState]) -> VersionRecord:
    purged = version.summary if version.operation == "purge" else {}
    return VersionRecord(
        number=version.number,
        state=version.state,
        operation=version.operation,
        created_at=version.created_at,
        finished_at=version.finished_at,
        user=version.created_by,
        host=version.host,
        message=version.message,
        tool_version=version.tool_version,
        reproducible=version.reproducible,
        error=version.error,
        encoder=_encoder_json(version),
        dataset=_dataset_json(version),
        params=version.params,
        classes_added=diff.added,
        classes_retired=diff.retired,
        classes_restored=diff.restored,
        classes_purged=diff.removed,
        instances_added={n: c.added for n, c in new.items() if c.added},
        instances_removed={n: c.removed for n, c in new.items() if c.removed},
        points_purged=dict(purged.get("per_class", {})),
        target=dict(version.summary.get("target") or _target(version.params)),
        templates=list(version.templates),
        prompt_rule=version.prompt_rule,
    )


def _target(params: dict[str, Any]) -> dict[str, str]:
    """What a lifecycle version acts on, from its parameters (also while pending)."""
    return {k: str(params[k]) for k in ("class", "dataset") if k in params}


#: a version's parameters that are the writing process's bookkeeping (its pid, its ingest
#: run, a purge's plan for finishing it after a crash), not what the user asked for
BOOKKEEPING_PARAMS = frozenset({"pid", "run", "plan"})


def user_params(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` without `BOOKKEEPING_PARAMS`: what a log shows a user."""
    return {k: v for k, v in params.items() if k not in BOOKKEEPING_PARAMS}


def version_log(
    ws: Workspace, domain: str, offset: int = 0, limit: int | None = None
) -> list[VersionRecord]:
    """The versions of ``domain`` (published, pending, failed, rolled back), oldest
    first; ``offset``/``limit`` page them in the database, so a page costs the page."""
    with ws.catalog.session() as s:
        row = get_domain(s, domain)
        versions = list(
            s.scalars(
                select(VocabVersion)
                .where(VocabVersion.domain_id == row.id)
                .order_by(VocabVersion.number)
                .offset(offset)
                .limit(limit)
            )
        )
        previous = _published_before(s, row, versions[0].number) if versions else None
        prev_states = _states(s, previous)
        records = []
        for version in versions:
            states = _states(s, version) if version.state == "published" else {}
            start = previous.number if previous else 0
            diff = (
                _diff(domain, start, version.number, prev_states, states)
                if states
                else VocabDiff(domain, start, version.number)
            )
            records.append(_record(version, diff, states))
            if version.state == "published":
                previous, prev_states = version, states
        return records


def count_versions(ws: Workspace, domain: str) -> int:
    """How many versions ``domain`` has, in every state."""
    with ws.catalog.session() as s:
        row = get_domain(s, domain)
        where = VocabVersion.domain_id == row.id
        return int(s.scalar(select(func.count()).select_from(VocabVersion).where(where)) or 0)


def _published_before(session: Session, domain: Domain, number: int) -> VocabVersion | None:
    return session.scalar(
        select(VocabVersion)
        .where(
            VocabVersion.domain_id == domain.id,
            VocabVersion.state == "published",
            VocabVersion.number < number,
        )
        .order_by(VocabVersion.number.desc())
        .limit(1)
    )


def vocabulary(ws: Workspace, domain: str, version: int | None = None) -> VocabSnapshot:
    """The vocabulary of ``domain`` at a published ``version`` (None: the head)."""
    with ws.catalog.session() as s:
        row = get_domain(s, domain)
        v = readable_version(s, row, version)
        states = _states(s, v)
        classes = sorted(states.values(), key=lambda c: c.class_id)
        return VocabSnapshot(domain, v.number, classes, v.reproducible)


def vocab_diff(ws: Workspace, domain: str, a: int, b: int) -> VocabDiff:
    """Classes added, retired, restored, purged and instance counts changed from a to b."""
    with ws.catalog.session() as s:
        row = get_domain(s, domain)
        va, vb = readable_version(s, row, a), readable_version(s, row, b)
        return _diff(domain, a, b, _states(s, va), _states(s, vb))


def head(session: Session, domain: Domain) -> VocabVersion | None:
    return get_version(session, domain, domain.head_version) if domain.head_version else None
