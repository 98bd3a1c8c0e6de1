"""A domain's quota on an ingest. Qdrant has none per tenant, so the catalog keeps it
(``domain.max_instances``: the most instances readers of the head may see) and an ingest
into a domain with a quota first counts what it would add — the point ids of the
instances it selects, less those already stored — and is refused before it embeds
anything or takes a version. The count is checked again under the domain's write lock
(`check_quota`, from `IngestPlan.prepare`) against the head as it is then, so two
ingests racing for the last room cannot both pass.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from knnvocab.catalog.domains import find_domain
from knnvocab.catalog.models import Domain
from knnvocab.catalog.versions import head_instances, pending_version
from knnvocab.errors import ConfigError, QuotaExceededError
from knnvocab.ingest.embedding import PointContext, instance_ids
from knnvocab.store.base import PointFilter, VectorStore
from knnvocab.workspace import Workspace

if TYPE_CHECKING:
    from knnvocab.embed.spec import EncoderInfo
    from knnvocab.ingest.opening import IngestPlan

_CHUNK = 1024  # point ids per store lookup


@dataclass(frozen=True)
class QuotaCheck:
    """The point ids of every instance an ingest selects, and the store that says which
    of them are already there (those are skipped, so they are not counted again)."""

    store: VectorStore
    collection: str
    domain: str
    ids: tuple[str, ...]

    def stored(self) -> int:
        """How many of ``ids`` the store holds now."""
        return sum(
            len(self.store.existing(self.collection, self.domain, self.ids[i : i + _CHUNK]))
            for i in range(0, len(self.ids), _CHUNK)
        )

    def enforce(self, s: Session, domain: Domain, quota: int, pending: int | None) -> None:
        """Refuse if the instances not yet stored would take ``domain`` past ``quota``.

        ``pending``: the version a resume continues; what it already added is stored (not
        new) but counts as held, since publishing it makes it visible.
        """
        already = self.stored()
        new = len(self.ids) - already
        held = head_instances(s, domain)
        if pending is not None:
            held += self.store.count(self.collection, PointFilter(self.domain, added_in=pending))
        if new and held + new > quota:
            name = domain.name
            raise QuotaExceededError(
                f"domain {name!r} holds {held} of its {quota} instances"
                f"{f' (with pending version {pending})' if pending is not None else ''}; "
                f"this ingest would add {new}"
                f"{f' ({already} already stored are not counted)' if already else ''}: "
                f"{held + new - quota} over the quota — raise it with "
                f"`knnvocab domain set {name} --max-instances N`"
            )


def check_quota(s: Session, domain: Domain, check: QuotaCheck | None, pending: int | None) -> None:
    """Refuse an ingest that would take ``domain`` past its quota, as the domain stands
    in session ``s`` (under the write lock, the head no other change can move).

    ``check`` is None when the domain had no quota as the ingest started: if it has one
    now, the ingest was not counted and is refused (running it again counts it).
    """
    s.refresh(domain, ["max_instances"])  # as committed now, not as first read
    quota = domain.max_instances
    if quota is None:
        return
    if check is None:
        raise ConfigError(
            f"domain {domain.name!r} got a quota of {quota} instances while this ingest was "
            "starting; run it again so that what it adds is counted"
        )
    check.enforce(s, domain, quota, pending)


def count_for_quota(
    ws: Workspace, plan: IngestPlan, domain: str, encoder: EncoderInfo
) -> QuotaCheck | None:
    """The pre-pass of an ingest into a domain with a quota: every sample's instances are
    read (not embedded) and selected as the ingest will, their point ids computed, and
    the quota checked. None when the domain has no quota (reading every sample costs
    time) or a resume has nothing to continue (taking the version says so)."""
    with ws.catalog.session() as s:
        row = find_domain(s, domain)
        if row is None or row.max_instances is None:
            return None
        pending = pending_version(s, row) if plan.options.resume else None
        if plan.options.resume and (pending is None or pending.dataset is None):
            return None
        dataset = pending.dataset.name if pending and pending.dataset else plan.dataset_name()
        selection = plan.preview(s, row)
    context = PointContext(domain, dataset, 0, "", encoder.fingerprint)  # ids need no version
    ids: list[str] = []
    for ref in plan.refs:
        sample = plan.reader.load(ref)
        ids += instance_ids(sample, selection.pick(sample, Counter()), context)
    check = QuotaCheck(ws.store, encoder.collection, domain, tuple(ids))
    with ws.catalog.session() as s:
        row = find_domain(s, domain)
        if row is not None:
            check_quota(s, row, check, pending.number if pending else None)
    return check
