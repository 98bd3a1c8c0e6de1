"""The service as the owner of an embedded home's store, and the CLI on the same machine.

The embedded store is open in one process at a time. While `knnvocab serve` runs on an
embedded home it owns the store and announces itself in ``<home>/service.json`` (its URL
and a secret, readable by the home's owner only); `knnvocab ingest`, `retire`, `restore`
and `purge` on that home find it there and send their change through the service, under
the CLI user's name, instead of failing on the busy store. Whoever can read the home can
read every domain's data anyway, so the secret grants nothing more.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from knnvocab.catalog.versions import process_alive
from knnvocab.config import Settings

SERVICE_FILE = "service.json"


@dataclass(frozen=True)
class LocalService:
    """A running service that owns this home's store."""

    url: str
    secret: str
    pid: int


def service_file(settings: Settings) -> Path:
    return settings.home / SERVICE_FILE


def announce(settings: Settings, url: str, secret: str) -> Path:
    """Write ``<home>/service.json`` (mode 0600, atomically)."""
    path = service_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "secret": secret, "pid": os.getpid()}, f)
    tmp.replace(path)
    return path


def withdraw(settings: Settings) -> None:
    """Remove the announcement if it is this process's."""
    found = local_service(settings, check_alive=False)
    if found is not None and found.pid == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            service_file(settings).unlink()


def local_service(settings: Settings, check_alive: bool = True) -> LocalService | None:
    """The service that owns this embedded home's store, if one runs."""
    if settings.qdrant_url is not None:
        return None
    try:
        data = json.loads(service_file(settings).read_text())
        found = LocalService(str(data["url"]), str(data["secret"]), int(data["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if check_alive and not process_alive(found.pid):
        return None
    return found
