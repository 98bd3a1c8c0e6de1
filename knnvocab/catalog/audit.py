"""The append-only audit log: one row per change, kept even when a domain is deleted."""

from __future__ import annotations

import socket
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from knnvocab.catalog.models import AuditEvent


def hostname() -> str:
    return socket.gethostname() or "unknown"


def record(
    session: Session,
    action: str,
    actor: str,
    *,
    domain: str | None = None,
    version: int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an event (flushed, so it gets its id; committed with the session)."""
    event = AuditEvent(
        action=action,
        actor=actor,
        host=hostname(),
        domain=domain,
        version=version,
        detail=detail or {},
    )
    session.add(event)
    session.flush()
    return event


def events(
    session: Session,
    domain: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[AuditEvent]:
    """Events, oldest first, optionally of one domain and after ``since``."""
    query = select(AuditEvent).order_by(AuditEvent.id)
    if domain is not None:
        query = query.where(AuditEvent.domain == domain)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))
