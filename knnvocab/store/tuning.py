"""How both backends index and search: one place, so a domain moved between the embedded
store and a Qdrant server keeps its recall (measured with bench/knn.py and
bench/tenants.py; the log is in bench/README.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tuning:
    """HNSW, quantization and search parameters of a collection.

    Domains share a collection as tenants: no global graph (``m = 0``), one graph per
    tenant (``payload_m``) built over the tenant index on ``domain``. A tenant whose
    filtered points fit in ``full_scan_threshold_kb`` of vectors is searched exhaustively
    (a 200-instance tenant: 400 KB at 512-d), which is exact and faster than a graph.
    HNSW builds and searches on int8 copies of the vectors kept in RAM; the best
    ``oversampling × k`` candidates are rescored with the float32 originals.
    """

    m: int = 0
    payload_m: int = 32  # m 16 gave recall@10 0.97 at 100k points per domain, 32 gives 0.999
    ef_construct: int = 256
    full_scan_threshold_kb: int = 10_000
    hnsw_ef: int = 128
    quantile: float = 0.99
    oversampling: float = 2.0


TUNING = Tuning()
