"""The store-side checks of `doctor` for one domain (see knnvocab.lifecycle.consistency)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from knnvocab.catalog import audit
from knnvocab.catalog.classes import domain_classes
from knnvocab.catalog.domains import get_domain
from knnvocab.catalog.models import Domain, VocabVersion
from knnvocab.catalog.versions import list_versions, pending_version, snapshot
from knnvocab.faults import fault
from knnvocab.lifecycle.common import mark_not_reproducible
from knnvocab.lifecycle.repair import publish_repair
from knnvocab.lifecycle.rollback import liveness
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace


def points(n: int) -> str:
    """``1 point``, ``3 points``."""
    return f"{n} point{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class Context:
    """What the catalog says about one domain, read once per check pass.

    ``counts``: per published version, instances per class id (as recorded).
    ``collections``: per version, the collection of the encoder it was read with;
    ``collection`` is the head's (or the domain's, before its first version).
    ``classes``: class ids a point may carry (not purged) -> name; ``names``: every class.
    """

    domain: str
    domain_id: int
    collection: str | None
    head: int
    states: dict[int, str]
    reproducible: dict[int, bool]
    pending: int | None
    pending_operation: str | None
    pending_alive: bool
    pending_reason: str
    classes: dict[int, str]
    names: dict[int, str]
    counts: dict[int, dict[int, int]]
    collections: dict[int, str] = field(default_factory=dict)

    def collection_of(self, version: int) -> str | None:
        return self.collections.get(version, self.collection)

    def all_collections(self) -> list[str]:
        """Every collection the domain's versions were read with."""
        found = set(self.collections.values())
        return sorted(found | {self.collection} if self.collection else found)


@dataclass(frozen=True)
class Finding:
    """One thing doctor found.

    ``problem`` False: informational (a pending version a live process works on).
    ``repaired``: the repair ran (``action`` says what it did, or would do).
    """

    domain: str
    kind: str
    message: str
    action: str | None = None
    version: int | None = None
    points: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    problem: bool = True
    repaired: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Doctor:
    """Collects findings; with ``repair`` runs each fix and records it in the audit log."""

    def __init__(self, ws: Workspace, repair: bool, actor: str) -> None:
        self.ws = ws
        self.repair = repair
        self.actor = actor
        self.findings: list[Finding] = []

    def found(self, finding: Finding, fix: Callable[[], None] | None = None) -> None:
        """Record ``finding``; when repairing, run ``fix`` first and audit it."""
        if fix is not None and self.repair:
            fix()
            self.ws.store.flush()
            fault(self.ws.settings, "doctor.after_repair")
            with self.ws.catalog.session() as s:
                audit.record(
                    s,
                    "doctor.repair",
                    self.actor,
                    domain=finding.domain,
                    version=finding.version,
                    detail={
                        "what": finding.kind,
                        "points": finding.points,
                        "classes": finding.classes,
                        "action": finding.action,
                        "finding": finding.message,
                    },
                )
            finding = replace(finding, repaired=True)
        self.findings.append(finding)


def load_context(ws: Workspace, name: str) -> Context:
    """Read what the catalog says about domain ``name`` (one short transaction)."""
    with ws.catalog.session() as s:
        row = get_domain(s, name)
        versions = list_versions(s, row)
        counts = {
            v.number: {c.vocab_class.class_id: c.instances for c in snapshot(s, v)}
            for v in versions
            if v.state == "published"
        }
        everything = domain_classes(s, row).values()
        at_head = counts.get(row.head_version, {})
        pending = pending_version(s, row)
        life = liveness(s, pending) if pending is not None else None
        return Context(
            domain=name,
            domain_id=row.id,
            collection=_head_collection(row, versions),
            collections={v.number: v.encoder.collection for v in versions},
            head=row.head_version,
            states={v.number: v.state for v in versions},
            reproducible={v.number: v.reproducible for v in versions},
            pending=pending.number if pending else None,
            pending_operation=pending.operation if pending else None,
            pending_alive=life.alive if life else False,
            pending_reason=life.reason if life else "",
            classes={
                c.class_id: c.name
                for c in everything
                if c.class_id in at_head or c.added_in > row.head_version
            },
            names={c.class_id: c.name for c in everything},
            counts=counts,
        )


def _head_collection(row: Domain, versions: list[VocabVersion]) -> str | None:
    head = next((v for v in versions if v.number == row.head_version), None)
    if head is not None:
        return head.encoder.collection
    return row.encoder.collection if row.encoder else None


def _good(ctx: Context, version: int) -> bool:
    """Points tagged ``version`` belong there: published, or a pending version (a live
    one is in progress; a dead one is reported, and rolled back, on its own)."""
    return ctx.states.get(version) in ("published", "pending")


def store_checks(doc: Doctor, ctx: Context, collection: str) -> None:
    """The store-side checks, each repair done before the next check reads the store."""
    if not check_present(doc, ctx, collection):
        return
    check_versions(doc, ctx, collection)
    check_removals(doc, ctx, collection)
    check_classes(doc, ctx, collection)
    check_counts(doc, ctx, collection)


def _delete(ws: Workspace, collection: str, flt: PointFilter) -> Callable[[], None]:
    return lambda: ws.store.delete(collection, flt)


def _clear(ws: Workspace, collection: str, flt: PointFilter) -> Callable[[], None]:
    return lambda: ws.store.set_removed_in(collection, flt, None)


def check_present(doc: Doctor, ctx: Context, collection: str) -> bool:
    """A domain the catalog counts points for but of which the store has none at all is
    missing (a wrong or restored-from-elsewhere store), not a loss: reported, never
    repaired, and the other checks are skipped."""
    expected = sum(ctx.counts.get(ctx.head, {}).values())
    if (
        collection != ctx.collection
        or expected == 0
        or doc.ws.store.count(collection, PointFilter(ctx.domain)) > 0
    ):
        return True
    doc.found(
        Finding(
            ctx.domain,
            "missing-domain",
            f"the store at {doc.ws.store.location} has no points of domain {ctx.domain!r} in "
            f"{collection} at all, where the catalog counts {points(expected)} at version "
            f"{ctx.head}: is this the right store? (not repaired automatically: restore the "
            "store's files, or re-ingest the domain's datasets)",
            version=ctx.head,
            points=expected,
        )
    )
    return False


def check_versions(doc: Doctor, ctx: Context, collection: str) -> None:
    """Points of failed or rolled-back versions (orphans), or of no version at all."""
    tags = doc.ws.store.counts_by(collection, PointFilter(ctx.domain), "added_in")
    for version, n in sorted((int(v), n) for v, n in tags.items()):
        if _good(ctx, version):
            continue
        state = ctx.states.get(version)
        what = f"version {version} ({state.replace('_', ' ')})" if state else "no version"
        doc.found(
            Finding(
                ctx.domain,
                "orphan" if state else "unknown-version",
                f"{points(n)} added in {what}: no reader can ever see them",
                action="delete them",
                version=version,
                points=n,
            ),
            _delete(doc.ws, collection, PointFilter(ctx.domain, added_in=version)),
        )


def check_removals(doc: Doctor, ctx: Context, collection: str) -> None:
    """Points hidden by a version that was never published (a retire that died)."""
    flt = PointFilter(ctx.domain, live=False)
    tags = doc.ws.store.counts_by(collection, flt, "removed_in")
    for version, n in sorted((int(v), n) for v, n in tags.items()):
        if _good(ctx, version):
            continue
        state = ctx.states.get(version, "unknown")
        doc.found(
            Finding(
                ctx.domain,
                "dangling-removal",
                f"{points(n)} hidden from version {version} on, which is "
                f"{state.replace('_', ' ')}: they should be live",
                action="make them live again",
                version=version,
                points=n,
            ),
            _clear(doc.ws, collection, PointFilter(ctx.domain, removed_in=version)),
        )


def _label(ctx: Context, class_id: int) -> str:
    return ctx.names.get(class_id, f"#{class_id}")


def check_classes(doc: Doctor, ctx: Context, collection: str) -> None:
    """Points (of readable versions) whose class the catalog does not have, or purged."""
    tags = doc.ws.store.counts_by(collection, PointFilter(ctx.domain), "class_id")
    unknown = sorted(int(c) for c in tags if int(c) not in ctx.classes)
    for class_id in unknown:
        flt = PointFilter(ctx.domain, class_ids=(class_id,))
        by_version = doc.ws.store.counts_by(collection, flt, "added_in")
        good = {int(v): n for v, n in by_version.items() if _good(ctx, int(v))}
        if not good:
            continue  # all of them are orphans, reported (and deleted) above
        known = "purged" if class_id in ctx.names else "unknown"
        doc.found(
            Finding(
                ctx.domain,
                "unknown-class",
                f"{points(sum(good.values()))} of {known} class {_label(ctx, class_id)!r} "
                f"(versions {', '.join(map(str, sorted(good)))})",
                action="delete them",
                points=sum(good.values()),
                classes={_label(ctx, class_id): sum(good.values())},
            ),
            _delete(doc.ws, collection, flt),
        )


def check_counts(doc: Doctor, ctx: Context, collection: str) -> None:
    """Per published version and class: the catalog's count against the visible points."""
    for version, recorded in sorted(ctx.counts.items()):
        if ctx.collection_of(version) != collection:
            continue  # read with another encoder: checked against its own collection
        flt = PointFilter(ctx.domain, visible_at=version)
        stored = {int(c): n for c, n in doc.ws.store.counts_by(collection, flt, "class_id").items()}
        missing = {c: n - stored.get(c, 0) for c, n in recorded.items() if n > stored.get(c, 0)}
        extra = {
            c: n - recorded.get(c, 0)
            for c, n in stored.items()
            if n > recorded.get(c, 0) and c in ctx.classes
        }
        # a version marked not reproducible may miss points; the head may not: later
        # versions would count them (a purge rolled back after it deleted some)
        if missing and (ctx.reproducible.get(version, True) or version == ctx.head):
            _report_missing(doc, ctx, version, {_label(ctx, c): n for c, n in missing.items()})
        if extra:
            doc.found(
                Finding(
                    ctx.domain,
                    "extra",
                    f"version {version}: the store shows {points(sum(extra.values()))} that "
                    "the catalog does not count (not repairable automatically)",
                    version=version,
                    points=sum(extra.values()),
                    classes={_label(ctx, c): n for c, n in sorted(extra.items())},
                )
            )


def _report_missing(doc: Doctor, ctx: Context, version: int, lost: dict[str, int]) -> None:
    """Points ``version`` showed are gone: mark it not reproducible; at the head, also
    publish a repair version so that later versions do not count them (unless another
    version is pending: the next doctor run does it then)."""
    repair = version == ctx.head and (ctx.pending is None or not ctx.pending_alive)
    action = f"mark version {version} not reproducible"
    if repair:
        action += " and publish a repair version with the store's counts"

    def fix() -> None:
        mark_not_reproducible(doc.ws, ctx.domain_id, [version])
        if repair:
            publish_repair(doc.ws, ctx.domain, lost, actor=doc.actor)

    doc.found(
        Finding(
            ctx.domain,
            "missing",
            f"version {version}: the catalog counts {points(sum(lost.values()))} that the "
            "store does not have (cannot be recreated)",
            action=action,
            version=version,
            points=sum(lost.values()),
            classes=dict(sorted(lost.items())),
        ),
        fix,
    )
