"""The two branches and their fusion, per proposal (kNN-CLIP).

P_base: CLIP zero-shot — dense features against the class text embeddings, per patch,
averaged over each proposal with the same coverage weights as mask pooling.
P_ret: the softmax(similarity / τ)-weighted vote of the k nearest stored instances.
Fusion: where max P_ret >= T, P = λ·P_ret + (1 − λ)·P_base; elsewhere P_base.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from knnvocab.store.base import Hit

Probs = npt.NDArray[np.float32]


def zero_shot(
    features: torch.Tensor, text: np.ndarray, weights: torch.Tensor, logit_scale: float
) -> Probs:
    """(h, w, D) features, (C, D) float32 text, (P, h*w) patch weights -> (P, C) float32
    P_base (NumPy). Computed on the features' device; ``weights`` may be anywhere."""
    h, w, d = features.shape
    if text.shape[0] == 0:
        return np.zeros((weights.shape[0], 0), np.float32)
    patches = F.normalize(features.reshape(h * w, d).float(), dim=1)
    logits = logit_scale * patches @ torch.from_numpy(text).to(patches.device).T
    per_patch = logits.softmax(dim=1)  # (h*w, C)
    weights = weights.to(patches.device)
    weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return (weights @ per_patch).cpu().numpy().astype(np.float32)


def retrieval(
    hits: Sequence[Sequence[Hit]], class_index: dict[int, int], tau: float
) -> tuple[Probs, list[Probs]]:
    """Per proposal, P_ret over the classes (``class_index``: class id -> column) and the
    softmax weight of each neighbour. Neighbours of a class outside the vocabulary count
    towards no class."""
    out = np.zeros((len(hits), len(class_index)), np.float32)
    weights: list[Probs] = []
    for i, neighbours in enumerate(hits):
        if not neighbours:
            weights.append(np.zeros(0, np.float32))
            continue
        sims = np.array([h.score for h in neighbours], np.float64) / tau
        w = np.exp(sims - sims.max())
        w = (w / w.sum()).astype(np.float32)
        weights.append(w)
        for hit, weight in zip(neighbours, w, strict=True):
            column = class_index.get(hit.class_id)
            if column is not None:
                out[i, column] += weight
    return out, weights


def fuse(
    p_base: Probs, p_ret: Probs, threshold: float, lam: float
) -> tuple[Probs, npt.NDArray[np.bool_]]:
    """(P, C) each -> fused (P, C) and (P,) bool: where retrieval was used (it had
    neighbours in the vocabulary and max P_ret >= threshold)."""
    if p_ret.size == 0:
        return p_base.astype(np.float32), np.zeros(len(p_base), bool)
    confident = (p_ret.sum(axis=1) > 0) & (p_ret.max(axis=1) >= threshold)
    fused = np.where(confident[:, None], lam * p_ret + (1.0 - lam) * p_base, p_base)
    return fused.astype(np.float32), confident
