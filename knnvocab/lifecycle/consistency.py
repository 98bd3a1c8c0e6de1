"""`doctor`: compare the catalog with the vector store, domain by domain, and repair.

Checks, in the order repairs run (each reads the store afresh, so findings never overlap):

- a pending version no process works on any more (dead) -> rolled back (a purge, which
  cannot be undone, is finished instead);
- points of failed / rolled-back versions, or of versions the catalog never had -> deleted;
- points hidden by a version that was never published -> made live again;
- points whose class the catalog does not know (or purged) -> deleted;
- per published version and class, the catalog's instance count against the points the
  store shows at that version: points missing from the store cannot be recreated, so the
  versions that lost them are marked not reproducible, and if the head lost some a
  `repair` version with the store's counts is published; extra points are reported;
- shards / tenants in the store of a domain the catalog does not have -> dropped.

Every repair is an audit event ``doctor.repair``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from knnvocab.catalog.domains import get_domain, list_domains
from knnvocab.catalog.models import Encoder
from knnvocab.catalog.versions import list_versions
from knnvocab.errors import ConfigError, StoreBusyError, StoreError, StoreIdentityError
from knnvocab.lifecycle.consistency_checks import (
    Context,
    Doctor,
    Finding,
    load_context,
    points,
    store_checks,
)
from knnvocab.lifecycle.purging import finish_purge
from knnvocab.lifecycle.rollback import rollback_pending
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace


@dataclass(frozen=True)
class DoctorReport:
    """What doctor checked and found; ``ok`` when nothing wrong is left unrepaired."""

    domains: list[str]
    repair: bool
    findings: list[Finding]

    @property
    def remaining(self) -> list[Finding]:
        return [f for f in self.findings if f.problem and not f.repaired]

    @property
    def ok(self) -> bool:
        return not self.remaining

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "repair": self.repair,
            "domains": self.domains,
            "findings": [f.to_json() for f in self.findings],
        }


def doctor(
    ws: Workspace, domain: str | None = None, repair: bool = False, *, actor: str | None = None
) -> DoctorReport:
    """Check ``domain`` (None: every domain, and the store for unknown domains); with
    ``repair``, fix what can be fixed, audited under ``actor`` (required then)."""
    if repair and not actor:
        raise ConfigError("doctor --repair needs an actor: who is repairing")
    with ws.catalog.session() as s:
        names = [get_domain(s, domain).name] if domain else [d.name for d in list_domains(s)]
    doc = Doctor(ws, repair, actor or "")
    for name in names:
        check_domain(doc, name)
    if domain is None:
        check_unknown_domains(doc)
    return DoctorReport(domains=names, repair=repair, findings=doc.findings)


def check_domain(doc: Doctor, name: str) -> None:
    """Every check of one domain: the store's identity, its pending version, the store
    (every point read back once: a damaged shard is reported, never repaired)."""
    ctx = load_context(doc.ws, name)
    try:
        _check_domain(doc, name, ctx)
    except StoreError as exc:
        kind = "store-busy" if isinstance(exc, StoreBusyError) else "store-damaged"
        doc.found(Finding(name, kind, f"not checked: {exc}"))


def _check_domain(doc: Doctor, name: str, ctx: Context) -> None:
    if not _store_recognised(doc, ctx):
        return
    if ctx.pending is not None and not ctx.pending_alive:
        purging = ctx.pending_operation == "purge"
        doc.found(
            Finding(
                name,
                "dead-pending",
                f"pending version {ctx.pending} ({ctx.pending_operation}): {ctx.pending_reason}",
                action="finish it (a purge cannot be undone)" if purging else "roll it back",
                version=ctx.pending,
            ),
            lambda: _end_dead(doc.ws, name, ctx, doc.actor),
        )
        if doc.repair:
            ctx = load_context(doc.ws, name)
    elif ctx.pending is not None:
        doc.found(
            Finding(
                name,
                "pending",
                f"pending version {ctx.pending} ({ctx.pending_operation}) in progress: "
                f"{ctx.pending_reason}",
                version=ctx.pending,
                problem=False,
            )
        )
    for collection in ctx.all_collections():
        try:
            doc.ws.store.count(collection, PointFilter(name))
        except StoreBusyError as exc:
            doc.found(Finding(name, "store-busy", f"not checked: {exc}"))
            return
        _read_back(doc, name, collection)  # a damaged shard is reported, not repaired
        store_checks(doc, ctx, collection)


def _read_back(doc: Doctor, name: str, collection: str) -> None:
    """Read every point of the domain, vector and payload, once: a truncated or
    overwritten shard file shows here (counts come from indexes kept in memory)."""
    for _ in doc.ws.store.scroll(collection, PointFilter(name), with_vectors=True):
        pass


def _store_recognised(doc: Doctor, ctx: Context) -> bool:
    """Whether the domain's collection is the one the catalog recorded; if not (a wrong
    setting), report it and check nothing else: repairing a good catalog against the
    wrong store would damage its history."""
    try:
        for collection in ctx.all_collections():
            doc.ws.store.check(collection)
    except StoreIdentityError as exc:
        doc.found(Finding(ctx.domain, f"store-{exc.kind}", f"not checked: {exc}"))
        return False
    except StoreBusyError as exc:
        doc.found(Finding(ctx.domain, "store-busy", f"not checked: {exc}"))
        return False
    return True


def _end_dead(ws: Workspace, name: str, ctx: Context, actor: str) -> None:
    if ctx.pending_operation == "purge":
        finish_purge(ws, name, actor=actor)
    else:
        rollback_pending(ws, name, actor=actor, reason=f"doctor: {ctx.pending_reason}")


def _bound(ws: Workspace) -> dict[str, set[str]]:
    """Per collection, the catalog's domains whose points belong there."""
    bound: dict[str, set[str]] = {}
    with ws.catalog.session() as s:
        for collection in s.scalars(select(Encoder.collection)):
            bound.setdefault(collection, set())
        for d in list_domains(s):
            if d.encoder is not None:
                bound[d.encoder.collection].add(d.name)
            for v in list_versions(s, d):
                bound.setdefault(v.encoder.collection, set()).add(d.name)
    return bound


def _dropper(ws: Workspace, collection: str, name: str) -> Callable[[], None]:
    return lambda: ws.store.drop_domain(collection, name)


def check_unknown_domains(doc: Doctor) -> None:
    """Points in the store of domains the catalog does not have there (a half-done
    domain delete, or points written under another encoder)."""
    for collection, known in sorted(_bound(doc.ws).items()):
        try:
            unknown = sorted(set(doc.ws.store.domains(collection)) - known)
            counts = {n: doc.ws.store.count(collection, PointFilter(n)) for n in unknown}
        except StoreBusyError as exc:
            doc.found(Finding("*", "store-busy", f"collection {collection} not checked: {exc}"))
            continue
        except StoreIdentityError as exc:
            if not known:  # a domain's own check has reported it already
                doc.found(Finding("*", f"store-{exc.kind}", f"not checked: {exc}"))
            continue
        except StoreError as exc:  # a damaged shard
            if not known:
                doc.found(Finding("*", "store-damaged", f"collection {collection}: {exc}"))
            continue
        for name in unknown:
            doc.found(
                Finding(
                    name,
                    "unknown-domain",
                    f"{points(counts[name])} of domain {name!r} in {collection}, where the "
                    "catalog has no such domain",
                    action="delete them",
                    points=counts[name],
                ),
                _dropper(doc.ws, collection, name),
            )
