"""Writing an archive's catalog tables into this catalog, in the caller's transaction.

Rows get new primary keys here; every reference between them (domain, encoder, dataset,
version, class, run) is remapped. Encoders are matched by fingerprint, else created.
Every other column is kept as it was: times, authors, hosts, messages, parameters.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from knnvocab.catalog.models import (
    AuditEvent,
    Base,
    ClassCount,
    Dataset,
    Domain,
    Encoder,
    IngestRun,
    VocabClass,
    VocabVersion,
)
from knnvocab.portable.ids import IdMap
from knnvocab.portable.layout import row_from_json


def _new(s: Session, model: type[Base], data: dict[str, Any], **changes: Any) -> Any:
    values = row_from_json(model, data)
    values.pop("id", None)
    values.update(changes)
    row = model(**values)
    s.add(row)
    s.flush()
    return row


def _encoders(s: Session, rows: list[dict[str, Any]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for data in rows:
        row = s.scalar(select(Encoder).where(Encoder.fingerprint == data["fingerprint"]))
        out[data["id"]] = (row if row is not None else _new(s, Encoder, data)).id
    return out


def insert_catalog(s: Session, tables: dict[str, Any], ids: IdMap) -> int:
    """Insert every row of ``tables`` (layout.CATALOG_TABLES) as domain ``ids.target``;
    returns its head version."""
    encoders = _encoders(s, tables["encoders"])
    source = tables["domain"]
    old_encoder = source.get("encoder_id")
    domain = _new(
        s,
        Domain,
        source,
        name=ids.target,
        encoder_id=encoders[old_encoder] if old_encoder is not None else None,
    )
    datasets = {d["id"]: _new(s, Dataset, d, domain_id=domain.id).id for d in tables["datasets"]}
    versions = {
        v["id"]: _new(
            s,
            VocabVersion,
            v,
            domain_id=domain.id,
            encoder_id=encoders[v["encoder_id"]],
            dataset_id=datasets[v["dataset_id"]] if v["dataset_id"] is not None else None,
        ).id
        for v in tables["versions"]
    }
    classes = {c["id"]: _new(s, VocabClass, c, domain_id=domain.id).id for c in tables["classes"]}
    for c in tables["class_counts"]:
        _new(
            s,
            ClassCount,
            c,
            version_id=versions[c["version_id"]],
            class_pk=classes[c["class_pk"]],
        )
    for r in tables["ingest_runs"]:
        _new(
            s,
            IngestRun,
            r,
            id=ids.run(r["id"]),
            version_id=versions[r["version_id"]],
            dataset_id=datasets[r["dataset_id"]],
            encoder_id=encoders[r["encoder_id"]],
        )
    for e in sorted(tables["audit_events"], key=lambda e: e["id"]):
        _new(s, AuditEvent, e, domain=ids.target)
    return int(domain.head_version)
