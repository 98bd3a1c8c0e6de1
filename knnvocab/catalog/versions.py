"""Vocabulary versions: the pending write lock, publishing, and per-version class states.

A domain's versions are numbered 1, 2, 3, …; numbers are never reused, so a failed or
rolled-back version stays in the history. Readers only see published versions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from knnvocab import __version__
from knnvocab.catalog import audit
from knnvocab.catalog.models import (
    ClassCount,
    Domain,
    Encoder,
    IngestRun,
    VocabClass,
    VocabVersion,
    utcnow,
)
from knnvocab.embed.prompts import DEFAULT_PROMPTS, PromptSet
from knnvocab.errors import DomainBusyError, NotFoundError, VersionStateError


def pending_version(session: Session, domain: Domain) -> VocabVersion | None:
    return session.scalar(
        select(VocabVersion).where(
            VocabVersion.domain_id == domain.id, VocabVersion.state == "pending"
        )
    )


def busy_message(session: Session, domain: Domain, pending: VocabVersion) -> str:
    """Who holds the domain's write lock, and what the user can do about it."""
    run = session.scalar(
        select(IngestRun)
        .where(IngestRun.version_id == pending.id)
        .order_by(IngestRun.started_at.desc())
        .limit(1)
    )
    holder = f"{pending.operation} by {pending.created_by}@{pending.host}"
    if run is not None:
        seen = f"{run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC"
        holder += f" (run {run.id[:8]}, pid {run.pid}, {run.status}, last seen {seen})"
    return (
        f"domain {domain.name!r} has pending version {pending.number}: {holder}; "
        f"wait for it (--wait), {_ender(pending, domain.name)}"
    )


def _ender(pending: VocabVersion, domain: str) -> str:
    """How to end a pending version that no process works on any more: ingest and
    reembed resume, a purge (which cannot be undone) is finished by doctor, the rest roll
    back."""
    rollback = f"roll it back with `knnvocab vocab rollback {domain}`"
    if pending.operation in ("ingest", "reembed"):
        return f"continue it with `knnvocab {pending.operation} … --resume`, or {rollback}"
    if pending.operation == "purge":
        return f"or, if its process died, finish it with `knnvocab doctor {domain} --repair`"
    return f"or {rollback}"


def begin_version(
    session: Session,
    domain: Domain,
    operation: str,
    encoder: Encoder,
    user: str,
    *,
    message: str = "",
    dataset_id: int | None = None,
    params: dict[str, Any] | None = None,
    prompts: PromptSet | None = None,
) -> VocabVersion:
    """Open version N+1 as pending: the domain's write lock, held by a unique index.

    The version makes zero-shot prompts with ``prompts``; None keeps the head version's
    (the defaults for a domain's first version), so a domain keeps its prompts until a
    change names new ones.

    Raises DomainBusyError if another pending version exists, even when two processes
    race: the database refuses the second insert. Until the session commits, the new
    version and anything the caller checks after it can still be rolled back together,
    and ``domain.head_version`` is fresh.
    """
    _lock_domain_row(session, domain)
    existing = pending_version(session, domain)
    if existing is not None:
        raise DomainBusyError(busy_message(session, domain, existing))
    last = session.scalar(
        select(func.max(VocabVersion.number)).where(VocabVersion.domain_id == domain.id)
    )
    inherited = head_prompts(session, domain)
    chosen = prompts or inherited
    version = VocabVersion(
        domain_id=domain.id,
        number=(last or 0) + 1,
        state="pending",
        operation=operation,
        message=message,
        created_by=user,
        host=audit.hostname(),
        tool_version=__version__,
        encoder_id=encoder.id,
        dataset_id=dataset_id,
        params=params or {},
        summary={},
        templates=list(chosen.templates),
        prompt_rule=chosen.rule,
    )
    try:
        with session.begin_nested():
            session.add(version)
            session.flush()
    except IntegrityError:
        raise DomainBusyError(
            f"domain {domain.name!r} is being changed by another process right now "
            "(its pending version was created a moment ago); try again or use --wait"
        ) from None
    audit.record(
        session,
        f"{operation}.begin",
        user,
        domain=domain.name,
        version=version.number,
        detail={
            "message": message,
            **(params or {}),
            **(_prompts_json(chosen) if chosen != inherited else {}),
        },
    )
    return version


def _lock_domain_row(session: Session, domain: Domain) -> None:
    """A no-op write to the domain's row: on Postgres a row lock that serialises writers
    of one domain; on SQLite it makes the driver open the transaction (pysqlite defers
    BEGIN to the first write, so a SAVEPOINT before it would commit on release)."""
    session.execute(
        update(Domain)
        .where(Domain.id == domain.id)
        .values(head_version=Domain.head_version)
        .execution_options(synchronize_session=False)
    )
    session.refresh(domain, ["head_version"])


def _prompts_json(prompts: PromptSet) -> dict[str, Any]:
    return {"templates": list(prompts.templates), "prompt_rule": prompts.rule}


def version_prompts(version: VocabVersion) -> PromptSet:
    """How ``version`` makes zero-shot prompts: what it recorded, never today's defaults."""
    return PromptSet(tuple(version.templates), version.prompt_rule)


def head_prompts(session: Session, domain: Domain) -> PromptSet:
    """The prompts of the domain's head version (the defaults before its first one)."""
    if domain.head_version == 0:
        return DEFAULT_PROMPTS
    return version_prompts(get_version(session, domain, domain.head_version))


def get_version(session: Session, domain: Domain, number: int) -> VocabVersion:
    version = session.scalar(
        select(VocabVersion).where(
            VocabVersion.domain_id == domain.id, VocabVersion.number == number
        )
    )
    if version is None:
        raise NotFoundError(
            f"domain {domain.name!r} has no version {number} (head is {domain.head_version})"
        )
    return version


def readable_version(session: Session, domain: Domain, number: int | None) -> VocabVersion:
    """A published version to read (None: the head); clear errors for anything else."""
    if number is None:
        if domain.head_version == 0:
            raise NotFoundError(f"domain {domain.name!r} has no published version yet")
        number = domain.head_version
    version = get_version(session, domain, number)
    if version.state != "published":
        raise VersionStateError(
            f"version {number} of domain {domain.name!r} is {version.state.replace('_', ' ')}, "
            "not published"
        )
    return version


def list_versions(session: Session, domain: Domain) -> list[VocabVersion]:
    return list(
        session.scalars(
            select(VocabVersion)
            .where(VocabVersion.domain_id == domain.id)
            .order_by(VocabVersion.number)
        )
    )


def snapshot(session: Session, version: VocabVersion) -> list[ClassCount]:
    """Every class as it stood at ``version``, ordered by class id."""
    return list(
        session.scalars(
            select(ClassCount)
            .join(VocabClass, ClassCount.class_pk == VocabClass.id)
            .where(ClassCount.version_id == version.id)
            .order_by(VocabClass.class_id)
        )
    )


def head_instances(session: Session, domain: Domain) -> int:
    """The instances readers of the domain's head see (its live classes'): what a quota
    limits."""
    if domain.head_version == 0:
        return 0
    rows = snapshot(session, get_version(session, domain, domain.head_version))
    return sum(r.instances for r in rows if r.live)


@dataclass(frozen=True)
class ClassChange:
    """What a version does to one class: instances added / removed, and its new state.

    ``purged``: the class leaves the vocabulary for good (no class_count row from this
    version on; the history still shows it in earlier versions).
    """

    added: int = 0
    removed: int = 0
    live: bool | None = None  # None: unchanged
    purged: bool = False


def publish_version(
    session: Session,
    domain: Domain,
    version: VocabVersion,
    changes: Mapping[int, ClassChange],
    summary: dict[str, Any],
) -> None:
    """Publish ``version``: its class snapshot is the head's with ``changes`` applied
    (keyed by vocab_class primary key), and it becomes the domain's head.

    A class that existed before but is missing from the head's snapshot was purged and
    stays out, as does one this version purges.
    """
    if version.state != "pending":
        raise VersionStateError(f"version {version.number} is {version.state}, not pending")
    previous = (
        {
            c.class_pk: c
            for c in snapshot(session, get_version(session, domain, domain.head_version))
        }
        if domain.head_version
        else {}
    )
    classes = session.scalars(
        select(VocabClass).where(
            VocabClass.domain_id == domain.id, VocabClass.added_in <= version.number
        )
    )
    for cls in classes:
        before = previous.get(cls.id)
        change = changes.get(cls.id, ClassChange())
        if change.purged or (before is None and cls.added_in < version.number):
            continue
        live = change.live if change.live is not None else (before.live if before else True)
        instances = (before.instances if before else 0) + change.added - change.removed
        session.add(
            ClassCount(
                version_id=version.id,
                class_pk=cls.id,
                live=live,
                instances=instances,
                added=change.added,
                removed=change.removed,
            )
        )
    version.state = "published"
    version.finished_at = utcnow()
    version.summary = summary
    domain.head_version = version.number
    session.flush()


def close_version(
    session: Session, domain: Domain, version: VocabVersion, state: str, error: str | None
) -> None:
    """End a pending version as ``failed`` or ``rolled_back``; classes it introduced go."""
    if state not in ("failed", "rolled_back"):
        raise ValueError(f"close_version: expected failed or rolled_back, got {state!r}")
    version.state = state
    version.error = error
    version.finished_at = utcnow()
    for cls in session.scalars(
        select(VocabClass).where(
            VocabClass.domain_id == domain.id, VocabClass.added_in == version.number
        )
    ):
        session.delete(cls)
    session.flush()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
