"""How the embedded store lays out and addresses a qdrant-edge shard: its configuration
(tuned with bench/knn.py, see bench/README.md), its payload indexes (`INDEXED_FIELDS`),
and the translation of a `PointFilter`'s conditions into qdrant-edge's filter type."""

from __future__ import annotations

from typing import Any

import qdrant_edge as qe

from knnvocab.store.base import Hit, PointFilter
from knnvocab.store.payload import (
    INDEXED_FIELDS,
    Above,
    AnyOf,
    AtMost,
    Condition,
    Equals,
    IndexedField,
    Missing,
    PointPayload,
)
from knnvocab.store.tuning import TUNING


def _edge_condition(c: Condition) -> Any:
    match c:
        case Equals(field, value):
            return qe.FieldCondition(key=field, match=qe.MatchValue(value))
        case AnyOf(field, values):
            return qe.FieldCondition(key=field, match=qe.MatchAny(list(values)))
        case AtMost(field, value):
            return qe.FieldCondition(key=field, range=qe.RangeFloat(lte=value))
        case Above(field, value):
            return qe.FieldCondition(key=field, range=qe.RangeFloat(gt=value))
        case Missing(field):
            return qe.IsEmptyCondition(key=field)
    raise TypeError(f"unknown filter condition {c!r}")


def hit(point_id: Any, score: float, payload: dict[str, Any]) -> Hit:
    """A scored point of a query, with its payload looked up afterwards, as a `Hit`."""
    full = PointPayload.from_dict(payload)
    return Hit(str(point_id), float(score), full.class_id, full)


def edge_filter(flt: PointFilter) -> qe.Filter:
    """A PointFilter as a qdrant-edge Filter (always with the domain condition)."""
    conditions = flt.conditions()
    must = [_edge_condition(c) for c in conditions.must]
    must_not = [_edge_condition(c) for c in conditions.must_not]
    return qe.Filter(must=must, must_not=must_not or None)


RESCORE_OVERSAMPLING = TUNING.oversampling


def shard_config(dim: int) -> qe.EdgeConfig:
    """One shard for every domain of a collection, tuned as `TUNING` says."""
    return qe.EdgeConfig(
        vectors={"": qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
        hnsw_config=qe.HnswIndexConfig(
            m=TUNING.m,
            payload_m=TUNING.payload_m,
            ef_construct=TUNING.ef_construct,
            full_scan_threshold=TUNING.full_scan_threshold_kb,
        ),
        quantization_config=qe.ScalarQuantizationConfig(
            type=qe.ScalarType.Int8, quantile=TUNING.quantile, memory=qe.Memory.Pinned
        ),
    )


def _edge_index(f: IndexedField) -> Any:
    # HNSW links only on the tenant key: building graphs for every indexed field made one
    # optimize of 60k points take 320 s instead of 4.6 s (bench/README.md)
    if f.kind == "keyword":
        return qe.KeywordIndexParams(is_tenant=f.tenant, enable_hnsw=f.tenant)
    return qe.IntegerIndexParams(lookup=True, range=f.range, enable_hnsw=False)


def create_indexes(shard: qe.EdgeShard) -> None:
    for f in INDEXED_FIELDS:
        shard.update(qe.UpdateOperation.create_field_index(f.name, _edge_index(f)))
