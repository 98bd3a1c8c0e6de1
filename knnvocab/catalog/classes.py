"""A domain's classes: stable integer ids, names and prompts."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from knnvocab.catalog.models import ClassCount, Domain, VocabClass, VocabVersion
from knnvocab.embed.prompts import PromptSet


def domain_classes(session: Session, domain: Domain) -> dict[str, VocabClass]:
    """Every class the domain has ever had, by name."""
    rows = session.scalars(select(VocabClass).where(VocabClass.domain_id == domain.id))
    return {c.name: c for c in rows}


def ensure_classes(
    session: Session, domain: Domain, names: Sequence[str], version: int, prompts: PromptSet
) -> dict[str, VocabClass]:
    """Classes for ``names``: existing ones keep their ids, new ones get the next ids
    (starting at 1; 0 is "unlabelled" in index PNGs) and ``added_in = version``, with the
    prompts of the version that adds them (each version reads with its own `PromptSet`)."""
    known = domain_classes(session, domain)
    next_id = (
        session.scalar(
            select(func.max(VocabClass.class_id)).where(VocabClass.domain_id == domain.id)
        )
        or 0
    ) + 1
    out: dict[str, VocabClass] = {}
    for name in names:
        cls = known.get(name)
        if cls is None:
            cls = VocabClass(
                domain_id=domain.id,
                class_id=next_id,
                name=name,
                prompts=prompts.prompts_for(name),
                added_in=version,
            )
            session.add(cls)
            known[name] = cls
            next_id += 1
        out[name] = cls
    session.flush()
    return out


def live_classes(session: Session, version: VocabVersion) -> list[VocabClass]:
    """The vocabulary of a published version: its live classes, by class id."""
    return list(
        session.scalars(
            select(VocabClass)
            .join(ClassCount, ClassCount.class_pk == VocabClass.id)
            .where(ClassCount.version_id == version.id, ClassCount.live.is_(True))
            .order_by(VocabClass.class_id)
        )
    )
