"""The portable archive of one domain: its layout, version 1, described once.

An archive is an uncompressed POSIX tar (pax headers) holding, in this order:

- ``catalog/<table>.json``: the domain's whole catalog history, one JSON file per table
  (`CATALOG_TABLES`): every column of every row, times as ISO 8601 UTC, the rows' own
  primary keys kept so rows can refer to each other (an import gives them new ones).
  API tokens, service jobs and store identities belong to a deployment and are never
  exported.
- ``points/<collection>.parquet``: one file per vector collection the domain has points
  in, written in row groups of `ROW_GROUP` points; columns ``id`` (string), ``vector``
  (fixed_size_list<float32>[dim]) and one column per `PointPayload` field
  (`POINT_SCHEMA`). Any Parquet reader opens it without knnvocab.
- ``manifest.json``, written last: {"format": "knnvocab-domain", "format_version": 1,
  "tool_version", "domain", "created", "members": {path: {"sha256", "bytes"}}, "counts":
  {"points": {collection: n}, "versions", "classes", "audit_events"}}. Every other
  member is listed with its SHA-256; an import checks them all before it writes anything.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import DateTime, inspect

from knnvocab.catalog.models import (
    AuditEvent,
    Base,
    ClassCount,
    Dataset,
    Domain,
    Encoder,
    IngestRun,
    UTCDateTime,
    VocabClass,
    VocabVersion,
)

FORMAT = "knnvocab-domain"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: points per Parquet row group (and per store insert on import)
ROW_GROUP = 4096

#: member name (catalog/<name>.json) -> the model whose rows it holds, in insert order
CATALOG_TABLES: dict[str, type[Base]] = {
    "domain": Domain,
    "encoders": Encoder,
    "datasets": Dataset,
    "versions": VocabVersion,
    "classes": VocabClass,
    "class_counts": ClassCount,
    "ingest_runs": IngestRun,
    "audit_events": AuditEvent,
}


def catalog_member(table: str) -> str:
    return f"catalog/{table}.json"


def points_member(collection: str) -> str:
    return f"points/{collection}.parquet"


def point_schema(dim: int) -> pa.Schema:
    """The Parquet schema of a collection's points: (N,) rows, ``vector`` (dim,) float32."""
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
            pa.field("domain", pa.string(), nullable=False),
            pa.field("class_id", pa.int64(), nullable=False),
            pa.field("label", pa.string(), nullable=False),
            pa.field("added_in", pa.int64(), nullable=False),
            pa.field("removed_in", pa.int64()),
            pa.field("dataset", pa.string(), nullable=False),
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("image", pa.string(), nullable=False),
            pa.field("instance", pa.string(), nullable=False),
            pa.field("area", pa.int64(), nullable=False),
            pa.field("restored_from", pa.string()),
        ]
    )


#: the payload columns, in schema order (everything but id and vector)
PAYLOAD_COLUMNS = tuple(point_schema(1).names[2:])


def row_to_json(row: Base) -> dict[str, Any]:
    """Every mapped column of ``row`` as JSON (datetimes as ISO 8601 strings)."""
    data: dict[str, Any] = {}
    for attr in inspect(type(row)).column_attrs:
        value = getattr(row, attr.key)
        data[attr.key] = value.isoformat() if isinstance(value, datetime) else value
    return data


def row_from_json(model: type[Base], data: dict[str, Any]) -> dict[str, Any]:
    """Column values for a new ``model`` row from `row_to_json` output: datetimes parsed,
    columns this model does not have dropped (an archive of a newer knnvocab)."""
    values: dict[str, Any] = {}
    for attr in inspect(model).column_attrs:
        if attr.key not in data:
            continue
        value = data[attr.key]
        column = attr.columns[0]
        if value is not None and _is_time(column.type):
            value = datetime.fromisoformat(value)
        values[attr.key] = value
    return values


def _is_time(kind: Any) -> bool:
    return isinstance(kind, UTCDateTime | DateTime)


def sha256_file(path: Path, chunk: int = 1 << 20) -> tuple[str, int]:
    """(hex SHA-256, size in bytes) of the file at ``path``, read in 1 MiB chunks."""
    import hashlib

    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size
