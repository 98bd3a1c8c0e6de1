"""Backups of a whole deployment: one portable archive per domain and a manifest.

``backup create DIR`` exports every domain at its latest published version (an export
refuses a domain mid-change and checks nothing was published while it read); it writes
into ``DIR`` marked partial until the manifest is written last, so a backup killed half
way is never mistaken for a whole one, and the same command again finishes it (domains
already exported at an unchanged head are kept). ``backup restore DIR`` imports every
archive into this deployment, which must not hold those domains yet; imports are
idempotent, so a restore killed half way is finished by running it again. The restored
deployment records its own store identity (the store made its collections)."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from knnvocab import __version__
from knnvocab.diskspace import writing
from knnvocab.errors import ConfigError, InputError, VersionStateError
from knnvocab.faults import fault, fill_disk
from knnvocab.portable.export import ExportResult, export_domain
from knnvocab.portable.importing import import_domain
from knnvocab.portable.layout import sha256_file
from knnvocab.progress import Progress
from knnvocab.workspace import Workspace

log = logging.getLogger(__name__)

MANIFEST = "backup.json"
PARTIAL = "backup.partial.json"
FORMAT = "knnvocab-backup"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class BackupResult:
    folder: Path
    domains: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "domains": self.domains}


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _start(folder: Path) -> dict[str, Any]:
    """The partial record of an unfinished backup in ``folder`` (a new one if empty)."""
    if (folder / MANIFEST).exists():
        raise ConfigError(f"{folder} already holds a finished backup: choose a new folder")
    if folder.exists() and any(folder.iterdir()) and not (folder / PARTIAL).exists():
        raise ConfigError(f"{folder} is not empty and holds no unfinished backup")
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / PARTIAL).exists():
        data: dict[str, Any] = json.loads((folder / PARTIAL).read_text())
        return data
    return {"domains": {}}


def _export_between_changes(
    ws: Workspace, name: str, archive: Path, wait: float, progress: Progress | None
) -> ExportResult:
    """Export ``name`` at its latest published version; while a change is in progress
    (a pending version, or one taken during the export) try again, for up to ``wait``
    seconds: writes go on while a backup runs."""
    deadline = time.monotonic() + wait
    delay = 0.5
    while True:
        try:
            return export_domain(ws, name, archive, progress)
        except VersionStateError:
            if time.monotonic() + delay > deadline:
                raise
            log.info("domain %s is mid-change; exporting it again in %.1f s", name, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def create_backup(
    ws: Workspace, folder: Path, *, wait: float = 600.0, progress: Progress | None = None
) -> BackupResult:
    """Export every domain of ``ws`` into ``folder`` (see the module docstring); a domain
    mid-change is exported once the change ends (for up to ``wait`` seconds)."""
    with writing(folder, "write the backup"):
        return _create(ws, folder, wait, progress)


def _create(ws: Workspace, folder: Path, wait: float, progress: Progress | None) -> BackupResult:
    from knnvocab.lifecycle.domains import domain_infos

    partial = _start(folder)
    done: dict[str, dict[str, Any]] = partial["domains"]
    for info in domain_infos(ws):
        known = done.get(info.name)
        if known is not None and known["head_version"] == info.head_version:
            continue  # exported by the run that was interrupted, still the head
        archive = folder / f"{info.name}.knnvocab.tar"
        result = _export_between_changes(ws, info.name, archive, wait, progress)
        done[info.name] = {
            "archive": archive.name,
            "sha256": result.sha256,
            "head_version": result.counts["head_version"],
            "counts": result.counts,
        }
        _write(folder / PARTIAL, partial)
        fault(ws.settings, "backup.after_domain")
        fill_disk(ws.settings, "backup.after_domain")
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tool_version": __version__,
        "created": datetime.now(UTC).isoformat(),
        "catalog": ws.settings.catalog_backend,
        "store": ws.settings.store_backend,
        "domains": done,
    }
    _write(folder / MANIFEST, manifest)
    (folder / PARTIAL).unlink()
    return BackupResult(folder, done)


def _manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        hint = (
            " (an unfinished backup: run `backup create` again)"
            if (folder / PARTIAL).exists()
            else ""
        )
        raise InputError(path, f"not a finished knnvocab backup{hint}") from None
    except (OSError, ValueError) as exc:
        raise InputError(path, f"unreadable backup manifest ({exc})") from None
    if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
        raise InputError(
            path,
            f"backup format {data.get('format')!r} version {data.get('format_version')!r}; "
            f"this knnvocab reads {FORMAT!r} version {FORMAT_VERSION}",
        )
    return data


def restore_backup(
    ws: Workspace, folder: Path, *, actor: str, progress: Progress | None = None
) -> BackupResult:
    """Import every domain of the backup in ``folder`` into ``ws``; each archive's sha256
    is checked against the manifest before anything is written."""
    manifest = _manifest(folder)
    domains: dict[str, dict[str, Any]] = manifest["domains"]
    for name, entry in domains.items():
        archive = folder / entry["archive"]
        if not archive.is_file():
            raise InputError(archive, f"the backup's archive of domain {name!r} is missing")
        digest, _ = sha256_file(archive)
        if digest != entry["sha256"]:
            raise InputError(archive, "sha256 differs from the backup manifest's")
    restored: dict[str, dict[str, Any]] = {}
    for name, entry in sorted(domains.items()):
        result = import_domain(ws, folder / entry["archive"], actor=actor, progress=progress)
        restored[name] = result.to_json()
        fault(ws.settings, "backup.restore_after_domain")
    return BackupResult(folder, restored)
