"""`import_domain`: a portable archive into this deployment (embedded or scaled alike).

Order, so that a kill at any point is finished by running the same import again:

1. the archive is unpacked into a scratch folder and every member checked
   (`knnvocab.portable.reading`) before anything is written;
2. a domain of the target name is refused, unless this very archive was imported into
   it already (its ``domain.import`` audit event names the archive's SHA-256): then
   nothing is done;
3. the points go into the store first, by their deterministic ids with insert-only
   writes, so a re-run writes nothing twice; the store must then hold exactly the
   archive's points for the domain;
4. the catalog rows, in ONE transaction: encoders (matched by fingerprint, else
   created), the domain, datasets, versions, classes, class counts, ingest runs, the
   audit events, and one ``domain.import`` event.

A kill between 3 and 4 leaves points of a domain the catalog does not know; running the
import again completes it (`knnvocab doctor --repair` would instead drop them).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from knnvocab.catalog import audit
from knnvocab.catalog.domains import check_domain_name, find_domain
from knnvocab.catalog.models import AuditEvent, Encoder
from knnvocab.errors import ConfigError, InputError, StoreError
from knnvocab.faults import fault
from knnvocab.portable.ids import IdMap
from knnvocab.portable.layout import ROW_GROUP
from knnvocab.portable.reading import Contents, open_archive
from knnvocab.portable.rows import insert_catalog
from knnvocab.progress import NoProgress, Progress
from knnvocab.store.base import PointFilter, StoredPoint
from knnvocab.store.payload import PointPayload
from knnvocab.workspace import Workspace

#: the audit action of an import
IMPORT_ACTION = "domain.import"


@dataclass(frozen=True)
class ImportResult:
    """What an import did; ``already``: this archive was imported before, nothing done."""

    domain: str
    source_domain: str
    archive_sha256: str
    points: dict[str, int] = field(default_factory=dict)
    versions: int = 0
    already: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "source_domain": self.source_domain,
            "archive_sha256": self.archive_sha256,
            "points": self.points,
            "versions": self.versions,
            "already": self.already,
        }


def _clash(name: str) -> ConfigError:
    return ConfigError(
        f"domain {name!r} already exists in this deployment; nothing was changed: import "
        "under another name with --as NAME"
    )


def _already_imported(ws: Workspace, target: str, contents: Contents) -> bool:
    """True when ``target`` holds this archive's import; a clash when it holds another."""
    with ws.catalog.session() as s:
        if find_domain(s, target) is None:
            return False
        details = s.scalars(
            select(AuditEvent.detail).where(
                AuditEvent.domain == target, AuditEvent.action == IMPORT_ACTION
            )
        )
        if any(d.get("archive_sha256") == contents.sha256 for d in details):
            return True
    raise _clash(target)


def _collections(ws: Workspace, contents: Contents) -> dict[str, tuple[str, int, str]]:
    """Archive collection -> (collection here, dimension, encoder fingerprint); an encoder
    this catalog knows keeps its own collection."""
    out: dict[str, tuple[str, int, str]] = {}
    with ws.catalog.session() as s:
        for enc in contents.tables["encoders"]:
            known = s.scalar(select(Encoder).where(Encoder.fingerprint == enc["fingerprint"]))
            here = known.collection if known is not None else str(enc["collection"])
            out[str(enc["collection"])] = (here, int(enc["dim"]), str(enc["fingerprint"]))
    return out


def _points(
    table: pa.RecordBatch, dim: int, fingerprint: str, ids: IdMap, where: str
) -> list[StoredPoint]:
    vectors = table.column("vector").flatten().to_numpy(zero_copy_only=False)
    vectors = np.asarray(vectors, np.float32).reshape(-1, dim)
    rows = table.drop_columns(["vector"]).to_pylist()
    points = []
    for row, vector in zip(rows, vectors, strict=True):
        if row["domain"] != ids.source:
            raise InputError(where, f"a point of domain {row['domain']!r}, not {ids.source!r}")
        old = row.pop("id")
        keys = (row["dataset"], row["image"], row["instance"], fingerprint)
        if row.get("restored_from") is not None:
            row["restored_from"] = ids.point(row["restored_from"], *keys)
        row["domain"], row["run_id"] = ids.target, ids.run(row["run_id"])
        points.append(StoredPoint(ids.point(old, *keys), vector, PointPayload.from_dict(row)))
    return points


def _write_points(
    ws: Workspace,
    contents: Contents,
    ids: IdMap,
    collections: dict[str, tuple[str, int, str]],
    progress: Progress,
) -> dict[str, int]:
    """Insert every point of the archive (insert-only by id: a re-run adds nothing)."""
    written: dict[str, int] = {}
    for source, path in sorted(contents.points.items()):
        if source not in collections:
            raise InputError(contents.points[source], "points of an encoder the archive lacks")
        collection, dim, fingerprint = collections[source]
        parquet = pq.ParquetFile(path)
        if parquet.schema_arrow.field("vector").type != pa.list_(pa.float32(), dim):
            raise InputError(path.name, f"vectors are not float32[{dim}] as the encoder says")
        ws.store.ensure_collection(collection, dim)
        ws.store.open_domain(collection, ids.target)
        n = 0
        # one row group at a time: iter_batches reads ahead through the whole file
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group)
            for batch in table.to_batches(max_chunksize=ROW_GROUP):
                points = _points(batch, dim, fingerprint, ids, path.name)
                ws.store.insert(collection, ids.target, points)
                n += batch.num_rows
                progress.advance(batch.num_rows, batch.num_rows)
        ws.store.flush()
        ws.store.optimize(collection, ids.target)
        written[collection] = n
    return written


def _check_store(ws: Workspace, target: str, written: dict[str, int]) -> None:
    """The store must hold exactly the archive's points of ``target``: more means points
    of an earlier domain of that name were left behind, which this import must not adopt."""
    for collection, n in written.items():
        held = ws.store.count(collection, PointFilter(target))
        if held != n:
            raise StoreError(
                f"the store holds {held} points of domain {target!r} in {collection}, the "
                f"archive {n}: points of another domain of that name are left there; "
                "`knnvocab doctor --repair` drops them, then import again"
            )


def import_domain(
    ws: Workspace,
    archive: Path,
    *,
    actor: str,
    name: str | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import the domain archive ``archive`` (see the module docstring), as ``name`` if
    given (else the archive's domain name). ``progress`` advances by points written."""
    progress = progress or NoProgress()
    archive = archive.resolve()
    ws.settings.home.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".import.", dir=ws.settings.home))
    try:
        contents = open_archive(archive, scratch / "archive")
        target = check_domain_name(name or contents.domain)
        versions = contents.tables["versions"]
        result = ImportResult(target, contents.domain, contents.sha256, versions=len(versions))
        if _already_imported(ws, target, contents):
            return replace(result, already=True)
        restores = [v["number"] for v in versions if v["operation"] == "restore"]
        ids = IdMap.of(contents.domain, target, restores)
        collections = _collections(ws, contents)
        progress.start(sum(contents.manifest["counts"]["points"].values()), 0)
        written = _write_points(ws, contents, ids, collections, progress)
        progress.finish()
        fault(ws.settings, "import.after_points")
        _check_store(ws, target, written)
        detail = {
            "archive_sha256": contents.sha256,
            "archive": archive.name,
            "source_domain": contents.domain,
            "source_tool_version": contents.manifest.get("tool_version"),
            "points": written,
        }
        try:
            with ws.catalog.session() as s:
                if find_domain(s, target) is not None:
                    raise _clash(target)
                head = insert_catalog(s, contents.tables, ids)
                audit.record(s, IMPORT_ACTION, actor, domain=target, version=head, detail=detail)
        except IntegrityError:
            with ws.catalog.session() as s:
                if find_domain(s, target) is not None:  # another import won the race
                    raise _clash(target) from None
            raise
        return replace(result, points=written)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
