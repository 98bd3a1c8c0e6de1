"""Reading the append-only audit log: every change, kept even after a domain is deleted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from knnvocab.catalog import audit
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


def audit_log(
    ws: Workspace,
    domain: str | None = None,
    since: datetime | None = None,
    action: str | None = None,
) -> list[AuditRecord]:
    """Audit events, oldest first: of one domain (even a deleted one), after ``since``,
    whose action is ``action`` or starts with ``action.``."""
    with ws.catalog.session() as s:
        rows = audit.events(s, domain=domain, since=since)
        return [
            AuditRecord(e.id, e.at, e.actor, e.host, e.domain, e.version, e.action, e.detail)
            for e in rows
            if action is None or e.action == action or e.action.startswith(f"{action}.")
        ]
