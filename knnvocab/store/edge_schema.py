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


def hit(p: Any) -> Hit:
    return Hit(str(p.id), float(p.score), PointPayload.from_dict(p.payload or {}))


def edge_filter(flt: PointFilter) -> qe.Filter:
    """A PointFilter as a qdrant-edge Filter (always with the domain condition)."""
    conditions = flt.conditions()
    must = [_edge_condition(c) for c in conditions.must]
    must_not = [_edge_condition(c) for c in conditions.must_not]
    return qe.Filter(must=must, must_not=must_not or None)


#: int8 candidates rescored with the float32 vectors, as a multiple of k (bench/README.md)
RESCORE_OVERSAMPLING = 2.0


def shard_config(dim: int) -> qe.EdgeConfig:
    # Tuned with bench/knn.py (bench/README.md): m=16 / ef_construct=128 gave recall@10
    # 0.97 at 100k points per domain with hnsw_ef=128, m=32 / ef_construct=256 gives 0.999.
    # HNSW builds and searches on int8 copies of the vectors pinned in RAM (~2x faster at
    # 512-d); search rescores the best candidates with the float32 originals.
    return qe.EdgeConfig(
        vectors={"": qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
        hnsw_config=qe.HnswIndexConfig(m=32, ef_construct=256, full_scan_threshold=10_000),
        quantization_config=qe.ScalarQuantizationConfig(
            type=qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Pinned
        ),
    )


def _edge_index(f: IndexedField) -> Any:
    if f.kind == "keyword":
        return qe.KeywordIndexParams(is_tenant=True) if f.tenant else qe.KeywordIndexParams()
    return qe.IntegerIndexParams(lookup=True, range=f.range)


def create_indexes(shard: qe.EdgeShard) -> None:
    for f in INDEXED_FIELDS:
        shard.update(qe.UpdateOperation.create_field_index(f.name, _edge_index(f)))
