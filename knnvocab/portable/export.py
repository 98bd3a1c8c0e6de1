"""`export_domain`: one domain's catalog history and points as a portable archive.

The points are streamed from the store into Parquet row groups in a scratch folder beside
the destination, then into the tar: memory stays flat however large the domain is. The
archive is written to a hidden temporary file beside ``dest``, fsynced and renamed into
place, so ``dest`` is either the whole archive or untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select

from knnvocab import __version__
from knnvocab.catalog import audit
from knnvocab.catalog.domains import get_domain
from knnvocab.catalog.models import (
    ClassCount,
    Dataset,
    Encoder,
    IngestRun,
    VocabClass,
    VocabVersion,
)
from knnvocab.diskspace import writing
from knnvocab.errors import InputError, VersionStateError
from knnvocab.faults import fill_disk
from knnvocab.portable.layout import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    PAYLOAD_COLUMNS,
    ROW_GROUP,
    catalog_member,
    point_schema,
    points_member,
    row_to_json,
    sha256_file,
)
from knnvocab.progress import NoProgress, Progress
from knnvocab.store.base import PointFilter, StoredPoint
from knnvocab.workspace import Workspace


@dataclass(frozen=True)
class ExportResult:
    """What was written: the archive, its SHA-256 and the manifest's counts."""

    domain: str
    path: Path
    sha256: str
    bytes: int
    counts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "path": str(self.path),
            "sha256": self.sha256,
            "bytes": self.bytes,
            "counts": self.counts,
        }


@dataclass
class _Snapshot:
    """The domain's catalog rows as JSON, and what to check has not moved meanwhile."""

    tables: dict[str, Any]
    collections: dict[str, int]  # collection -> dim
    last_version: int


def _snapshot(ws: Workspace, name: str) -> _Snapshot:
    with ws.catalog.session() as s:
        domain = get_domain(s, name)
        versions = list(
            s.scalars(
                select(VocabVersion)
                .where(VocabVersion.domain_id == domain.id)
                .order_by(VocabVersion.number)
            )
        )
        pending = [v.number for v in versions if v.state == "pending"]
        if pending:
            raise VersionStateError(
                f"domain {name!r} has pending version {pending[0]} (a change in progress): "
                "finish or roll back it (`knnvocab vocab rollback`) before exporting"
            )
        ids = [v.id for v in versions]
        encoder_ids = {v.encoder_id for v in versions}
        if domain.encoder_id is not None:
            encoder_ids.add(domain.encoder_id)
        encoders = list(s.scalars(select(Encoder).where(Encoder.id.in_(encoder_ids))))
        tables: dict[str, Any] = {
            "domain": row_to_json(domain),
            "encoders": [row_to_json(e) for e in sorted(encoders, key=lambda e: e.id)],
            "datasets": _rows(s, select(Dataset).where(Dataset.domain_id == domain.id)),
            "versions": [row_to_json(v) for v in versions],
            "classes": _rows(s, select(VocabClass).where(VocabClass.domain_id == domain.id)),
            "class_counts": _rows(s, select(ClassCount).where(ClassCount.version_id.in_(ids))),
            "ingest_runs": _rows(s, select(IngestRun).where(IngestRun.version_id.in_(ids))),
            "audit_events": [row_to_json(e) for e in _this_domains_events(s, name)],
        }
        collections = {e.collection: e.dim for e in encoders}
        return _Snapshot(tables, collections, max((v.number for v in versions), default=0))


def _this_domains_events(s: Any, name: str) -> list[Any]:
    """The audit events of the domain now called ``name``: the log is kept by name and
    outlives a deleted domain, so a domain of the same name deleted earlier left events
    up to its ``domain.delete`` tombstone that are not this one's history."""
    events = audit.events(s, domain=name)
    deleted = [i for i, e in enumerate(events) if e.action == "domain.delete"]
    return events[deleted[-1] + 1 :] if deleted else events


def _rows(s: Any, query: Any) -> list[dict[str, Any]]:
    rows = list(s.scalars(query))
    return sorted((row_to_json(r) for r in rows), key=lambda r: json.dumps(r, sort_keys=True))


def _unchanged(ws: Workspace, name: str, before: _Snapshot) -> None:
    """Refuse an archive of a domain that changed while its points were read."""
    with ws.catalog.session() as s:
        domain = get_domain(s, name)
        numbers = list(
            s.scalars(select(VocabVersion.number).where(VocabVersion.domain_id == domain.id))
        )
    if max(numbers, default=0) != before.last_version:
        raise VersionStateError(
            f"domain {name!r} changed while it was exported (a new version was taken); "
            "nothing was written: export it again"
        )


def _batches(points: Iterator[StoredPoint], size: int) -> Iterator[list[StoredPoint]]:
    batch: list[StoredPoint] = []
    for p in points:
        batch.append(p)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _table(batch: list[StoredPoint], schema: pa.Schema, dim: int) -> pa.Table:
    vectors = np.stack([p.vector for p in batch]).astype(np.float32, copy=False)
    if vectors.shape != (len(batch), dim):
        raise VersionStateError(f"stored vectors have shape {vectors.shape}, expected (N, {dim})")
    columns: dict[str, Any] = {
        "id": pa.array([p.id for p in batch], pa.string()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
    }
    payloads = [p.payload for p in batch]
    for name in PAYLOAD_COLUMNS:
        columns[name] = pa.array([getattr(p, name) for p in payloads], schema.field(name).type)
    return pa.Table.from_pydict(columns, schema=schema)


def _write_points(
    ws: Workspace,
    name: str,
    collection: str,
    dim: int,
    path: Path,
    progress: Progress,
) -> int:
    """Stream the domain's points of ``collection`` into the Parquet file ``path``."""
    schema = point_schema(dim).with_metadata(
        {"knnvocab.collection": collection, "knnvocab.domain": name}
    )
    n = 0
    with pq.ParquetWriter(path, schema) as writer:
        points = ws.store.scroll(collection, PointFilter(name), with_vectors=True)
        for batch in _batches(points, ROW_GROUP):
            writer.write_table(_table(batch, schema, dim), row_group_size=ROW_GROUP)
            n += len(batch)
            progress.advance(len(batch), len(batch))
    expected = ws.store.count(collection, PointFilter(name))
    if n != expected:
        raise VersionStateError(
            f"domain {name!r} changed while it was exported ({n} points read from "
            f"{collection}, {expected} there now); nothing was written: export it again"
        )
    return n


@contextmanager
def _scratch(dest: Path) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _add(tar: tarfile.TarFile, path: Path, member: str, mtime: float) -> None:
    info = tarfile.TarInfo(member)
    info.size, info.mtime, info.mode = path.stat().st_size, mtime, 0o644
    with path.open("rb") as f:
        tar.addfile(info, f)


def _write_tar(folder: Path, members: list[str], dest: Path, mtime: float) -> None:
    """The tar of ``members`` (paths under ``folder``, manifest last) at ``dest``,
    atomically: a temporary file beside it, fsynced, renamed, the folder fsynced."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for member in members:
                    _add(tar, folder / member, member, mtime)
            raw.flush()
            os.fsync(raw.fileno())
        Path(tmp).replace(dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def export_domain(
    ws: Workspace, name: str, dest: Path, progress: Progress | None = None
) -> ExportResult:
    """Write ``name``'s catalog history and points as the archive ``dest`` (layout:
    `knnvocab.portable.layout`). Refuses a domain with a pending version. ``progress``
    advances by points written."""
    progress = progress or NoProgress()
    dest = dest.resolve()
    if not dest.parent.is_dir():
        raise InputError(dest, f"folder {dest.parent} does not exist")
    if dest.is_dir():
        raise InputError(dest, "is a folder; name the archive file to write")
    snap = _snapshot(ws, name)
    created = datetime.now(UTC)
    totals = {c: ws.store.count(c, PointFilter(name)) for c in sorted(snap.collections)}
    progress.start(sum(totals.values()), 0)
    with writing(dest.parent, f"write the archive {dest.name}"):
        counts = _write_archive(ws, name, dest, snap, totals, created, progress)
    progress.finish()
    digest, size = sha256_file(dest)
    return ExportResult(name, dest, digest, size, counts)


def _write_archive(
    ws: Workspace,
    name: str,
    dest: Path,
    snap: _Snapshot,
    totals: dict[str, int],
    created: datetime,
    progress: Progress,
) -> dict[str, Any]:
    """The archive's members in a scratch folder beside ``dest``, then the tar; its counts."""
    with _scratch(dest) as folder:
        (folder / "catalog").mkdir()
        (folder / "points").mkdir()
        members = []
        for table, rows in snap.tables.items():
            members.append(catalog_member(table))
            (folder / members[-1]).write_text(json.dumps(rows, indent=1, sort_keys=True))
        written: dict[str, int] = {}
        for collection, dim in sorted(snap.collections.items()):
            if not totals[collection]:
                continue
            members.append(points_member(collection))
            path = folder / members[-1]
            written[collection] = _write_points(ws, name, collection, dim, path, progress)
        fill_disk(ws.settings, "export.after_points")
        _unchanged(ws, name, snap)
        published = [v["number"] for v in snap.tables["versions"] if v["state"] == "published"]
        counts = {
            "points": written,
            "head_version": max(published, default=0),
            "versions": len(snap.tables["versions"]),
            "classes": len(snap.tables["classes"]),
            "audit_events": len(snap.tables["audit_events"]),
        }
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "tool_version": __version__,
            "domain": name,
            "created": created.isoformat(),
            "members": {m: _digest(folder / m) for m in members},
            "counts": counts,
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        _write_tar(folder, [*members, MANIFEST], dest, created.timestamp())
    return counts


def _digest(path: Path) -> dict[str, Any]:
    digest, size = sha256_file(path)
    return {"sha256": digest, "bytes": size}
