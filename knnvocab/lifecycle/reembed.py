"""Reembed: a domain's instances written into another encoder's collection as one new
version, so a domain keeps its history when its CLIP encoder is upgraded.

Every instance visible at the head is read again from the dataset it was ingested from
(each source's content sha256 checked first) and embedded with the new encoder, as a
point with ``added_in`` = the reembed version. Versions before it keep reading the old
collection with the old encoder (their answers do not change); versions from it on read
the new one. The points of classes retired at the head are embedded too, with their
lifetime as it was (``[added_in, retired_in)``, all before the reembed): no version
reading the new collection sees them, and a later restore finds them there exactly as it
would have in the old collection. ``restored_from`` links are remapped to the new ids,
and the retired points they name are kept the same way, so every link resolves in the
new collection. Point ids are deterministic, so an interrupted reembed resumes without
embedding anything twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from knnvocab.catalog import audit
from knnvocab.catalog.domains import describe_encoder, ensure_encoder, get_domain
from knnvocab.catalog.models import Domain, Encoder, VocabVersion
from knnvocab.catalog.runs import checkpoint, finish_run, start_run
from knnvocab.catalog.versions import busy_message, get_version, pending_version, snapshot
from knnvocab.changes import Change, Opening, versioned_change
from knnvocab.embed.spec import EncoderInfo, EncoderSpec
from knnvocab.errors import ConfigError, DomainBusyError, EncoderMismatchError, VersionStateError
from knnvocab.faults import fault
from knnvocab.ingest.embedding import PointContext
from knnvocab.lifecycle.common import store_shortfall
from knnvocab.lifecycle.reembed_sources import Source, Wanted, embed_source, recorded_sources
from knnvocab.progress import NoProgress, Progress
from knnvocab.store.base import PointFilter, StoredPoint, point_id
from knnvocab.store.payload import PointPayload
from knnvocab.workspace import Workspace

if TYPE_CHECKING:
    from knnvocab.embed.openclip import OpenClipEncoder


@dataclass(frozen=True)
class ReembedOptions:
    """How to reembed: ``drop_missing`` skips datasets whose source is missing or changed
    (their instances are counted as dropped) instead of refusing; ``resume`` continues
    the domain's pending reembed."""

    message: str = ""
    drop_missing: bool = False
    resume: bool = False
    batch_size: int = 8
    checkpoint_seconds: float = 10.0


@dataclass(frozen=True)
class ReembedSummary:
    """What a reembed did: the version, both encoders' fingerprints, the points written
    (visible ones and retired ones kept for a restore), and the dropped datasets with why
    and how many of their instances visible at the head were lost."""

    domain: str
    version: int
    encoder: str
    previous_encoder: str
    points: int
    retired_points: int
    datasets: list[str]
    dropped: dict[str, dict[str, Any]]
    instances_dropped: int
    resumed: bool
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReembedPlan:
    """What a reembed reads, settled before a version is taken: the head and its
    collection, the instances per source, and the sources dropped with why."""

    domain: str
    head: int
    old: Encoder
    new: EncoderInfo
    options: ReembedOptions
    actor: str
    sources: dict[str, Source] = field(default_factory=dict)
    wanted: dict[str, list[Wanted]] = field(default_factory=dict)
    dropped: dict[str, dict[str, Any]] = field(default_factory=dict)

    def images(self) -> int:
        """How many images the reembed reads."""
        return sum(len({w.image for w in wanted}) for wanted in self.wanted.values())

    def params(self) -> dict[str, Any]:
        """What the version records."""
        return {
            "from_encoder": self.old.fingerprint,
            "datasets": sorted(self.sources),
            "drop_missing": self.options.drop_missing,
            "dropped": self.dropped,
        }


def reembed(
    ws: Workspace,
    domain: str,
    spec: EncoderSpec,
    options: ReembedOptions | None = None,
    progress: Progress | None = None,
    *,
    actor: str,
) -> ReembedSummary:
    """Embed every instance of ``domain`` with the encoder ``spec`` describes into its
    collection as one new version (operation ``reembed``), made by ``actor``; the domain
    is bound to that encoder from then on.

    A missing or changed dataset source is refused (ConfigError naming the dataset)
    before a version is taken, unless ``options.drop_missing``. An interruption leaves
    the version pending for ``options.resume`` (or `knnvocab vocab rollback`).
    """
    opts = options or ReembedOptions()
    started = time.monotonic()
    model = ws.encoder(spec)
    plan = plan_reembed(ws, domain, model.info, opts, actor)
    ws.store.ensure_collection(model.info.collection, model.dim)
    with ws.catalog.session() as s:
        encoder = ensure_encoder(s, model.info)
    opening = Opening(encoder=encoder, message=opts.message, params=plan.params())
    prepare = _preparer(ws, plan, encoder.id)
    with versioned_change(
        ws, domain, "reembed", actor, opening, prepare=prepare, resume=opts.resume, resumable=True
    ) as change:
        change.on_fail.append(_end_run(change))
        _embed_all(change, plan, model, progress or NoProgress())
        summary = _publish(change, plan, encoder.id, started)
    return summary


def plan_reembed(
    ws: Workspace, domain: str, new: EncoderInfo, options: ReembedOptions, actor: str
) -> ReembedPlan:
    """Check the domain and every source, and list what to embed; refuses (nothing
    written, no version taken) what the reembed cannot do."""
    with ws.catalog.session() as s:
        row = get_domain(s, domain)
        _check_state(s, row, new, options.resume)
        old = get_version(s, row, row.head_version).encoder
        plan = ReembedPlan(domain, row.head_version, old, new, options, actor)
        retired = {
            r.vocab_class.class_id: int(r.vocab_class.removed_in or 0)
            for r in snapshot(s, get_version(s, row, row.head_version))
            if not r.live
        }
        stored = {p.id: p.payload for p in ws.store.scroll(old.collection, PointFilter(domain))}
        keep = _keep(stored, plan.head, retired)
        names = {stored[i].dataset for i in keep}
        sources = recorded_sources(s, row, names)
    _check_sources(ws, plan, sources, names, {i: stored[i] for i in keep})
    for pid in keep:
        source = plan.sources.get(stored[pid].dataset)
        if source is not None:
            wanted = _wanted(plan, pid, stored, keep[pid])
            plan.wanted.setdefault(source.name, []).append(wanted)
    return plan


def _check_state(s: Session, row: Domain, new: EncoderInfo, resume: bool) -> None:
    if row.head_version == 0:
        raise VersionStateError(f"domain {row.name!r} has no published version to reembed")
    pending = pending_version(s, row)
    if pending is not None and not resume:
        raise DomainBusyError(busy_message(s, row, pending))
    if resume and (pending is None or pending.operation != "reembed"):
        raise VersionStateError(f"domain {row.name!r} has no pending reembed to resume")
    used = s.scalars(
        select(VocabVersion.number).where(
            VocabVersion.domain_id == row.id,
            VocabVersion.state == "published",
            VocabVersion.encoder.has(fingerprint=new.fingerprint),
        )
    ).all()
    if used:
        raise EncoderMismatchError(
            f"domain {row.name!r} already used encoder {new.spec.describe()} "
            f"[{new.fingerprint[:12]}] (version {max(used)}); a reembed writes into an "
            "encoder the domain has not used"
        )


def _keep(stored: dict[str, PointPayload], head: int, retired: dict[int, int]) -> dict[str, bool]:
    """The points to embed again: visible at ``head`` (True); hidden, kept as history
    (False), when a class retired at the head hid them (what a restore copies) or a
    kept point's ``restored_from`` names them."""
    keep: dict[str, bool] = {}
    for pid, p in stored.items():
        if p.added_in <= head and (p.removed_in is None or p.removed_in > head):
            keep[pid] = True
        elif p.class_id in retired and p.removed_in == retired[p.class_id]:
            keep[pid] = False
    todo = list(keep)
    while todo:
        link = stored[todo.pop()].restored_from
        if link is not None and link in stored and link not in keep:
            keep[link] = False
            todo.append(link)
    return keep


def _id_key(p: PointPayload) -> str:
    """The instance key a point's id was made from: restore keys its copies by version."""
    return p.instance if p.restored_from is None else f"{p.instance}@restored{p.added_in}"


def _new_id(domain: str, p: PointPayload, fingerprint: str) -> str:
    return point_id(domain, p.dataset, p.image, _id_key(p), fingerprint)


def _wanted(plan: ReembedPlan, pid: str, stored: dict[str, PointPayload], visible: bool) -> Wanted:
    p, fp = stored[pid], plan.new.fingerprint
    link = p.restored_from
    remapped = _new_id(plan.domain, stored[link], fp) if link in stored else None
    payload = replace(p, restored_from=remapped)
    new_id = _new_id(plan.domain, p, fp)
    return Wanted(p.image, p.instance, _id_key(p), new_id, payload, visible)


def _check_sources(
    ws: Workspace,
    plan: ReembedPlan,
    sources: dict[str, Source],
    names: set[str],
    kept: dict[str, PointPayload],
) -> None:
    """Every source re-hashed: a bad one refused, or (``drop_missing``) dropped."""
    for name in sorted(names):
        source = sources.get(name)
        why = "no published ingest recorded its source"
        if source is not None:
            problem = source.problem(ws.settings.max_image_pixels)
            if problem is None:
                plan.sources[name] = source
                continue
            why = problem
        if not plan.options.drop_missing:
            raise ConfigError(
                f"cannot reembed {plan.domain!r}: dataset {name!r}: {why}; restore it, or "
                "pass --drop-missing to leave its instances out"
            )
        lost = [p for p in kept.values() if p.dataset == name]
        visible = sum(1 for p in lost if p.removed_in is None or p.removed_in > plan.head)
        plan.dropped[name] = {"reason": why, "instances": visible, "points": len(lost)}


def _preparer(
    ws: Workspace, plan: ReembedPlan, encoder_id: int
) -> Callable[[Session, Domain, VocabVersion, str], None]:
    """Checked under the domain's lock: nothing changed since the plan, the collection
    holds none of the domain's points (or, resuming, this version's); the run starts."""

    def prepare(s: Session, domain: Domain, version: VocabVersion, run_id: str) -> None:
        if domain.head_version != plan.head:
            raise VersionStateError(
                f"domain {domain.name!r} changed while the reembed was planned; run it again"
            )
        if version.encoder_id != encoder_id:
            raise EncoderMismatchError(
                f"pending reembed {version.number} of {domain.name!r} writes for encoder "
                f"{describe_encoder(version.encoder)}; resume with that one, or roll it back"
            )
        held = ws.store.count(plan.new.collection, PointFilter(domain.name))
        if held and not plan.options.resume:
            raise VersionStateError(
                f"collection {plan.new.collection} already holds {held} points of "
                f"{domain.name!r}, which no version of it reads; a reembed writes only into a "
                "collection without the domain's points"
            )
        first = next(iter(plan.sources.values()), None)
        if first is not None:
            params = {"reembed": True, "sources": sorted(plan.sources)}
            start_run(
                s, version, first.dataset_id, encoder_id, plan.actor, params, plan.images(), run_id
            )
        if plan.options.resume:
            detail = {"run": run_id}
            audit.record(
                s,
                "reembed.resume",
                plan.actor,
                domain=domain.name,
                version=version.number,
                detail=detail,
            )

    return prepare


def _end_run(change: Change) -> Callable[[Session, str, str], None]:
    def end(s: Session, state: str, reason: str) -> None:
        finish_run(s, change.run_id, "interrupted" if state == "interrupted" else "failed", reason)

    return end


def _new_point(change: Change, wanted: Wanted, p: StoredPoint) -> StoredPoint:
    """The new point: the stored payload, with this version as ``added_in`` when it is
    visible at the head, or its lifetime as it was (ended before the head) otherwise."""
    payload = replace(wanted.payload, run_id=change.run_id)
    if wanted.visible:
        payload = replace(payload, added_in=change.number, removed_in=None)
    return StoredPoint(p.id, p.vector, payload)


def _embed_all(
    change: Change, plan: ReembedPlan, model: OpenClipEncoder, progress: Progress
) -> None:
    """One pass per source, checkpointed (a heartbeat; a resume skips stored points)."""
    ws = change.ws
    progress.start(plan.images(), 0)
    done = instances = 0
    last = time.monotonic()

    def stored(ids: list[str]) -> set[str]:
        return ws.store.existing(change.collection, change.domain, ids)

    for name, wanted in sorted(plan.wanted.items()):
        source = plan.sources[name]
        reader, refs = source.open(ws.settings.max_image_pixels)
        context = PointContext(
            change.domain, name, change.number, change.run_id, plan.new.fingerprint
        )
        for images, pairs in embed_source(
            model, reader, refs, wanted, context, stored, plan.options.batch_size
        ):
            points = [_new_point(change, w, p) for w, p in pairs]
            ws.store.insert(change.collection, change.domain, points)
            fault(ws.settings, "reembed.after_batch")
            done, instances = done + images, instances + len(points)
            progress.advance(images, len(points))
            if time.monotonic() - last > plan.options.checkpoint_seconds:
                ws.store.flush()
                with ws.catalog.session() as s:
                    checkpoint(s, change.run_id, done, instances)
                last = time.monotonic()
    progress.finish()


def _publish(change: Change, plan: ReembedPlan, encoder_id: int, started: float) -> ReembedSummary:
    """Count what the new collection shows, bind the domain to the new encoder, publish."""
    ws = change.ws
    ws.store.flush()
    ws.store.optimize(change.collection, change.domain)
    visible = ws.store.count(
        change.collection, PointFilter(change.domain, visible_at=change.number)
    )
    retired = ws.store.count(change.collection, PointFilter(change.domain, live=False))
    summary = ReembedSummary(
        domain=change.domain,
        version=change.number,
        encoder=plan.new.fingerprint,
        previous_encoder=plan.old.fingerprint,
        points=visible,
        retired_points=retired,
        datasets=sorted(plan.sources),
        dropped=plan.dropped,
        instances_dropped=sum(int(d["instances"]) for d in plan.dropped.values()),
        resumed=change.resumed,
        seconds=round(time.monotonic() - started, 3),
    )
    # the head's counts less what the new collection lacks: exactly the dropped instances
    changes = store_shortfall(change)

    def bind(s: Session, domain: Domain, _version: VocabVersion) -> None:
        domain.encoder_id = encoder_id
        domain.encoder = s.get_one(Encoder, encoder_id)
        finish_run(s, change.run_id, "succeeded", instances_done=visible + retired)

    detail = {
        "from_encoder": plan.old.fingerprint,
        "encoder": plan.new.fingerprint,
        "points": visible,
        "retired_points": retired,
        "dropped": plan.dropped,
    }
    change.publish(changes, summary.to_json(), detail, then=bind)
    return summary
