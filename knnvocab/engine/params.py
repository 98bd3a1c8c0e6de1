"""Parameters of a segmentation: retrieval (k, τ), fusion (T, λ) and the proposals."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from knnvocab.errors import ConfigError


@dataclass(frozen=True)
class SegmentParams:
    """How kNN-CLIP decides each segment's class.

    Attributes:
        k: neighbours retrieved per proposal.
        tau: softmax temperature over the neighbours' cosine similarities.
        threshold: T — retrieval is used only where max P_ret >= T.
        lam: λ — weight of P_ret in the fusion P = λ·P_ret + (1 − λ)·P_base.
        proposals: proposal method: ``slic``, ``masks:DIR`` or ``gt``.
        n_segments: SLIC's target number of superpixels.
        compactness: SLIC's colour/space trade-off.
        evidence: neighbours kept per segment in the outputs.
        zero_shot_only: skip retrieval entirely (the CLIP baseline).
        exact: exhaustive kNN instead of HNSW: slower on big domains, but the answers at a
            version never change as later versions are ingested (for audits).

    Defaults are ours (the paper tunes them per benchmark): a confident neighbourhood
    (T = 0.5) moves the decision most of the way towards retrieval (λ = 0.7).
    """

    k: int = 10
    tau: float = 0.1
    threshold: float = 0.5
    lam: float = 0.7
    proposals: str = "slic"
    n_segments: int = 128
    compactness: float = 10.0
    evidence: int = 5
    zero_shot_only: bool = False
    exact: bool = False

    def __post_init__(self) -> None:
        checks = (
            (self.k >= 1, f"k must be >= 1, got {self.k}"),
            (self.tau > 0, f"tau must be > 0, got {self.tau}"),
            (0.0 <= self.threshold <= 1.0, f"threshold must be in [0, 1], got {self.threshold}"),
            (0.0 <= self.lam <= 1.0, f"lambda must be in [0, 1], got {self.lam}"),
            (self.n_segments >= 1, f"n_segments must be >= 1, got {self.n_segments}"),
            (self.evidence >= 0, f"evidence must be >= 0, got {self.evidence}"),
        )
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["lambda"] = data.pop("lam")
        return data
