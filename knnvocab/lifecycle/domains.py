"""Domains as a user manages them: create (optionally bound to an encoder), list, show
with counts, set a quota, and delete (a purge of everything, with a tombstone in the audit
log)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from knnvocab.catalog import audit
from knnvocab.catalog.domains import (
    check_domain_name,
    check_max_instances,
    create_domain,
    describe_encoder,
    ensure_encoder,
    find_domain,
    get_domain,
    list_domains,
)
from knnvocab.catalog.models import Dataset, Domain, VocabClass, VocabVersion
from knnvocab.catalog.versions import (
    get_version,
    head_instances,
    list_versions,
    pending_version,
    snapshot,
)
from knnvocab.embed.spec import EncoderSpec
from knnvocab.errors import ConfigError, DomainBusyError
from knnvocab.lifecycle.rollback import liveness
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace


@dataclass(frozen=True)
class DomainInfo:
    """A domain with its counts at the head (from the catalog).

    ``versions`` counts versions per state; ``classes`` per state at the head (live,
    retired, purged); ``instances`` is what readers of the head see, the usage that
    ``max_instances`` (None: no quota) limits.
    """

    name: str
    description: str
    created_at: datetime
    created_by: str
    head_version: int
    pending_version: int | None
    encoder: str | None
    encoder_fingerprint: str | None
    versions: dict[str, int]
    classes: dict[str, int]
    instances: int
    max_instances: int | None
    datasets: int

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = self.created_at.isoformat()
        return data


def _info(s: Session, domain: Domain) -> DomainInfo:
    states = Counter(
        dict(
            s.execute(
                select(VocabVersion.state, func.count())
                .where(VocabVersion.domain_id == domain.id)
                .group_by(VocabVersion.state)
            ).all()
        )
    )
    rows = snapshot(s, get_version(s, domain, domain.head_version)) if domain.head_version else []
    classes = Counter("live" if r.live else "retired" for r in rows)
    known = s.scalar(
        select(func.count())
        .select_from(VocabClass)
        .where(VocabClass.domain_id == domain.id, VocabClass.added_in <= domain.head_version)
    )
    total = s.scalar(
        select(func.count()).select_from(Dataset).where(Dataset.domain_id == domain.id)
    )
    pending = pending_version(s, domain)
    return DomainInfo(
        name=domain.name,
        description=domain.description,
        created_at=domain.created_at,
        created_by=domain.created_by,
        head_version=domain.head_version,
        pending_version=pending.number if pending else None,
        encoder=describe_encoder(domain.encoder) if domain.encoder else None,
        encoder_fingerprint=domain.encoder.fingerprint if domain.encoder else None,
        versions={k: int(v) for k, v in sorted(states.items())},
        classes={
            "live": classes["live"],
            "retired": classes["retired"],
            "purged": int(known or 0) - len(rows),
        },
        instances=head_instances(s, domain),
        max_instances=domain.max_instances,
        datasets=int(total or 0),
    )


def new_domain(
    ws: Workspace,
    name: str,
    description: str = "",
    encoder: EncoderSpec | None = None,
    max_instances: int | None = None,
    *,
    actor: str,
) -> DomainInfo:
    """Create an empty domain, bound to ``encoder`` if given (else its first ingest binds
    it), with a quota of ``max_instances`` if given. Loading the encoder records its
    fingerprint and creates its collection."""
    check_domain_name(name)
    check_max_instances(max_instances)
    with ws.catalog.session() as s:
        if find_domain(s, name) is not None:  # before loading a model for nothing
            raise ConfigError(f"domain {name!r} already exists")
    model = ws.encoder(encoder) if encoder is not None else None
    if model is not None:
        ws.store.ensure_collection(model.info.collection, model.dim)
    with ws.catalog.session() as s:
        row = ensure_encoder(s, model.info) if model is not None else None
        domain = create_domain(s, name, actor, description, row, max_instances)
        return _info(s, domain)


def set_quota(ws: Workspace, name: str, max_instances: int | None, *, actor: str) -> DomainInfo:
    """Limit ``name`` to ``max_instances`` instances visible at its head (None: no quota),
    audited as ``domain.quota`` with the old and new value. An ingest that would exceed it
    is refused before embedding anything; a quota below the current usage only stops the
    domain from growing. An ingest already under way is not affected."""
    check_max_instances(max_instances)
    with ws.catalog.session() as s:
        domain = get_domain(s, name)
        # locked, so the old value the audit event records is the one replaced
        s.refresh(domain, ["max_instances"], with_for_update=True)
        old = domain.max_instances
        if old != max_instances:
            domain.max_instances = max_instances
            detail = {"old": old, "new": max_instances, "instances": head_instances(s, domain)}
            audit.record(s, "domain.quota", actor, domain=name, detail=detail)
        return _info(s, domain)


def domain_infos(ws: Workspace) -> list[DomainInfo]:
    """Every domain, by name, with its counts."""
    with ws.catalog.session() as s:
        return [_info(s, d) for d in list_domains(s)]


def domain_info(ws: Workspace, name: str) -> DomainInfo:
    """One domain with its counts (NotFoundError if it does not exist)."""
    with ws.catalog.session() as s:
        return _info(s, get_domain(s, name))


def delete_domain(ws: Workspace, name: str, reason: str = "", *, actor: str) -> DomainInfo:
    """Delete ``name`` for good: its points (and shard), then its catalog rows. The audit
    log keeps a ``domain.delete`` tombstone with what was deleted. Refused while a live
    process holds a pending version; a dead pending version is deleted with the rest."""
    with ws.catalog.session() as s:
        row = get_domain(s, name)
        pending = pending_version(s, row)
        if pending is not None:
            life = liveness(s, pending)
            if life.alive:
                raise DomainBusyError(
                    f"domain {name!r} has pending version {pending.number} "
                    f"({pending.operation}, {life.reason}); wait for it to finish"
                )
        info = _info(s, row)
        collections = {v.encoder.collection for v in list_versions(s, row)}
        collections |= {row.encoder.collection} if row.encoder else set()
    points = 0
    for collection in sorted(collections):  # every encoder its versions were read with
        points += ws.store.count(collection, PointFilter(name))
        ws.store.drop_domain(collection, name)
    with ws.catalog.session() as s:
        row = get_domain(s, name)
        audit.record(
            s,
            "domain.delete",
            actor,
            domain=name,
            detail={
                "points": points,
                "versions": info.versions,
                "classes": info.classes,
                "instances": info.instances,
                "datasets": info.datasets,
                "head_version": info.head_version,
                "encoder": info.encoder_fingerprint,
                "reason": reason,
            },
        )
        s.execute(delete(Domain).where(Domain.id == row.id))
    return info
