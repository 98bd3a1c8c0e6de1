"""Reading the append-only audit log: every change, kept even after a domain is deleted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from knnvocab.catalog.models import AuditEvent
from knnvocab.errors import ConfigError
from knnvocab.workspace import Workspace


@dataclass(frozen=True)
class AuditRecord:
    """One audit event: when (UTC), who, where, which domain/version, what, details."""

    id: int
    at: datetime
    actor: str
    host: str
    domain: str | None
    version: int | None
    action: str
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "host": self.host,
            "domain": self.domain,
            "version": self.version,
            "action": self.action,
            "detail": self.detail,
        }


def parse_since(text: str) -> datetime:
    """An ISO date (``2026-11-27``) or date-time; without a zone it is UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: expected an ISO date or date-time, e.g. 2026-11-27 or "
            "2026-11-27T14:30"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class AuditFilter:
    """Which events: of one domain (even a deleted one), at or after ``since``, whose
    action is ``action`` or of its family (``ingest`` matches ``ingest.begin``), by
    ``actor``."""

    domain: str | None = None
    since: datetime | None = None
    action: str | None = None
    actor: str | None = None

    def where(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.domain is not None:
            where.append(AuditEvent.domain == self.domain)
        if self.since is not None:
            where.append(AuditEvent.at >= self.since)
        if self.action:
            family = AuditEvent.action.startswith(f"{self.action}.", autoescape=True)
            where.append(or_(AuditEvent.action == self.action, family))
        if self.actor:
            where.append(AuditEvent.actor == self.actor)
        return where


def audit_page(
    session: Session,
    which: AuditFilter,
    offset: int = 0,
    limit: int | None = None,
    newest_first: bool = False,
) -> tuple[list[AuditRecord], int]:
    """A page of the events ``which`` selects (oldest first unless ``newest_first``),
    paged in the database, and how many there are in all."""
    where = which.where()
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(*where))
    order = AuditEvent.id.desc() if newest_first else AuditEvent.id
    rows = session.scalars(
        select(AuditEvent).where(*where).order_by(order).offset(offset).limit(limit)
    )
    records = [
        AuditRecord(e.id, e.at, e.actor, e.host, e.domain, e.version, e.action, e.detail)
        for e in rows
    ]
    return records, int(total or 0)


def audit_log(
    ws: Workspace,
    domain: str | None = None,
    since: datetime | None = None,
    action: str | None = None,
) -> list[AuditRecord]:
    """Every event ``AuditFilter(domain, since, action)`` selects, oldest first."""
    with ws.catalog.session() as s:
        return audit_page(s, AuditFilter(domain, since, action))[0]
