"""Why a segment got its label: neighbours, zero-shot scores and how they were fused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from knnvocab.engine.result import Segment, Segmentation


@dataclass(frozen=True)
class Explanation:
    """One decision, laid out: the inputs of both branches and the fusion rule applied."""

    segment: Segment
    zero_shot: list[tuple[str, float]]
    retrieval: list[tuple[str, float]]
    fused: list[tuple[str, float]]
    rule: str
    params: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        s = self.segment
        return {
            "segment": {"id": s.id, "area": s.area, "bbox": list(s.bbox)},
            "decision": {
                "label": s.label,
                "class_id": s.class_id,
                "score": round(s.score, 6),
                "source": s.source,
            },
            "rule": self.rule,
            "zero_shot": [{"label": n, "p": round(p, 6)} for n, p in self.zero_shot],
            "retrieval": [{"label": n, "p": round(p, 6)} for n, p in self.retrieval],
            "fused": [{"label": n, "p": round(p, 6)} for n, p in self.fused],
            "neighbours": [n.to_json() for n in s.neighbours],
            "params": self.params,
        }


def _top(seg: Segmentation, p: np.ndarray, n: int) -> list[tuple[str, float]]:
    order = np.argsort(-p, kind="stable")[:n]
    return [(seg.names[seg.class_ids[i]], float(p[i])) for i in order if p[i] > 0 or n <= 3]


def explain(seg: Segmentation, segment: Segment, top: int = 5) -> Explanation:
    """Lay out the decision about ``segment`` of ``seg``."""
    t, lam = seg.params["threshold"], seg.params["lambda"]
    best_ret = float(segment.p_ret.max(initial=0.0))
    if seg.params.get("zero_shot_only"):
        rule = "retrieval disabled (zero-shot only): P = P_base"
    elif not segment.neighbours:
        rule = "no stored neighbours in this domain and version: P = P_base"
    elif segment.source == "retrieval":
        rule = f"max P_ret = {best_ret:.3f} >= T = {t}: P = {lam}·P_ret + {1 - lam:.2f}·P_base"
    else:
        rule = f"max P_ret = {best_ret:.3f} < T = {t}: P = P_base (zero-shot)"
    return Explanation(
        segment=segment,
        zero_shot=_top(seg, segment.p_base, top),
        retrieval=_top(seg, segment.p_ret, top),
        fused=_top(seg, segment.p_final, top),
        rule=rule,
        params=seg.params,
    )
