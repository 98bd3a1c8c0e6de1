"""Dense CLIP features for a ViT image tower (MaskCLIP parametrisation) and mask pooling.

Images of any size and aspect ratio: the positional embedding is interpolated to the
patch grid of the image, the image is never squashed to a square.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from knnvocab.errors import EncoderError
from knnvocab.types import BoolArray, ImageArray


def target_size(height: int, width: int, short_side: int, patch: int) -> tuple[int, int]:
    """(H', W') for the encoder: short side ≈ ``short_side``, aspect kept, multiples of
    ``patch``, long side at most 4 × ``short_side``."""
    scale = short_side / min(height, width)
    scale = min(scale, 4 * short_side / max(height, width))
    h = max(patch, round(height * scale / patch) * patch)
    w = max(patch, round(width * scale / patch) * patch)
    return h, w


def preprocess(
    image: ImageArray,
    size: tuple[int, int],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H', W') float32 on ``device``, resized (bicubic,
    antialiased), normalised.

    The resize runs on the CPU on uint8 (torch's vectorised path, ~30x faster than on
    float); the uint8 result is what crosses to ``device`` (a quarter of the float bytes),
    and the normalisation runs there.
    """
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
    x = x.to(device).float() / 255.0
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def interpolate_pos_embed(pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(1 + g*g, C) learned positional embedding -> (1 + h*w, C) for a (h, w) patch grid."""
    cls_pos, patch_pos = pos[:1], pos[1:]
    g = math.isqrt(patch_pos.shape[0])
    if g * g != patch_pos.shape[0]:
        raise EncoderError(f"positional embedding of {patch_pos.shape[0]} patches is not square")
    if (g, g) == grid:
        return pos
    p = patch_pos.reshape(1, g, g, -1).permute(0, 3, 1, 2)
    p = F.interpolate(p, size=grid, mode="bicubic", align_corners=False)
    return torch.cat([cls_pos, p.permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1)])


def check_vit(visual: Any) -> None:
    """Refuse image towers the MaskCLIP path does not support, naming what was found."""
    needed = ("conv1", "class_embedding", "positional_embedding", "transformer", "ln_post", "proj")
    missing = [name for name in needed if not hasattr(visual, name)]
    if missing or getattr(visual, "attn_pool", None) is not None:
        raise EncoderError(
            f"dense features need an open_clip VisionTransformer image tower with a "
            f"projection; {type(visual).__name__} lacks {missing or ['plain token pooling']}"
        )


@torch.inference_mode()
def maskclip_features(visual: Any, x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H', W') normalised images -> (B, h, w, D) dense features in the joint space,
    on the device of ``x`` (which must be the device of ``visual``).

    All blocks but the last run unchanged; the last contributes only its value path
    (value projection then output projection of ``ln_1(x)``, no residual, no MLP),
    followed by ``ln_post`` and ``proj`` — MaskCLIP's parametrisation.
    """
    patch = visual.conv1.kernel_size[0]
    grid = (x.shape[-2] // patch, x.shape[-1] // patch)
    tokens = visual.conv1(x).flatten(2).transpose(1, 2)  # (B, h*w, width)
    cls = visual.class_embedding.to(tokens.dtype).expand(tokens.shape[0], 1, -1)
    tokens = torch.cat([cls, tokens], dim=1)
    tokens = tokens + interpolate_pos_embed(visual.positional_embedding, grid).to(tokens.dtype)
    tokens = visual.ln_pre(tokens)
    *blocks, last = visual.transformer.resblocks
    batch_first = getattr(visual.transformer, "batch_first", True)
    if not batch_first:
        tokens = tokens.transpose(0, 1)
    for block in blocks:
        tokens = block(tokens)
    if not batch_first:
        tokens = tokens.transpose(0, 1)
    width = last.attn.embed_dim
    v = F.linear(
        last.ln_1(tokens),
        last.attn.in_proj_weight[2 * width :],
        last.attn.in_proj_bias[2 * width :],
    )
    out = last.attn.out_proj(v)[:, 1:]
    out = visual.ln_post(out) @ visual.proj
    features: torch.Tensor = out.reshape(x.shape[0], grid[0], grid[1], -1)
    return features


def patch_index(height: int, width: int, grid: tuple[int, int]) -> npt.NDArray[np.int64]:
    """(H, W) int64: the patch (row-major index into the (h, w) grid) each pixel falls in.

    The image is cut into h × w non-overlapping rectangles of (almost) equal size, exactly
    as the resized image is cut into patches."""
    h, w = grid
    rows = (np.arange(height) * h) // height
    cols = (np.arange(width) * w) // width
    return rows[:, None] * w + cols[None, :]


def _fractions(
    counts: npt.NDArray[np.int64], index: npt.NDArray[np.int64], cells: int
) -> torch.Tensor:
    """Pixel counts per (segment, patch) -> the fraction of each patch covered."""
    sizes = np.bincount(index.ravel(), minlength=cells)
    return torch.from_numpy((counts / sizes).astype(np.float32))


def mask_weights(masks: BoolArray, grid: tuple[int, int]) -> torch.Tensor:
    """(N, H, W) bool -> (N, h*w) float32: the fraction of each patch every mask covers.

    Counts come from two one-hot matrix products (rows, then columns), exact in float32
    for any image below 2^24 pixels per patch."""
    n, height, width = masks.shape
    h, w = grid
    index = patch_index(height, width, grid)
    rows = F.one_hot(torch.from_numpy((np.arange(height) * h) // height), h).float()
    cols = F.one_hot(torch.from_numpy((np.arange(width) * w) // width), w).float()
    m = torch.from_numpy(np.ascontiguousarray(masks)).float()
    counts = rows.T @ (m @ cols)  # (N, h, w)
    return _fractions(counts.reshape(n, h * w).round().numpy().astype(np.int64), index, h * w)


def segment_weights(
    segment_map: npt.NDArray[np.integer[Any]], n: int, grid: tuple[int, int]
) -> torch.Tensor:
    """An (H, W) map of ids 0..n (0 = none) -> (n, h*w) float32 coverage of segments 1..n.

    Equal to `mask_weights` of the segments' masks, in one pass over the pixels."""
    height, width = segment_map.shape
    index = patch_index(height, width, grid)
    cells = grid[0] * grid[1]
    keys = segment_map.astype(np.int64).ravel() * cells + index.ravel()
    counts = np.bincount(keys, minlength=(n + 1) * cells)[: (n + 1) * cells]
    return _fractions(counts.reshape(n + 1, cells)[1:], index, cells)


def pool_masks(features: torch.Tensor, masks: BoolArray) -> np.ndarray:
    """Mask-pooled, L2-normalised embeddings.

    Args:
        features: (h, w, D) dense features of one image, on any device.
        masks: (N, H, W) bool at the image's original size; every mask non-empty.

    Returns:
        (N, D) float32 NumPy array, unit norm: the patch features averaged with each
        patch weighted by the fraction of it the mask covers.
    """
    h, w, _ = features.shape
    return pool_weights(features, mask_weights(masks, (h, w)))


def pool_weights(features: torch.Tensor, weights: torch.Tensor) -> np.ndarray:
    """(h, w, D) features (any device) and (N, h*w) patch weights (see `mask_weights`,
    any device) -> (N, D) float32 unit vectors as a NumPy array: the weighted mean of the
    patch features, L2-normalised. The pooling runs on the features' device."""
    h, w, d = features.shape
    totals = weights.sum(dim=1, keepdim=True)
    if bool((totals <= 0).any()):
        raise ValueError("pool_masks: every mask must cover at least one pixel")
    share = (weights / totals).to(features.device)
    pooled = F.normalize(share @ features.reshape(h * w, d).to(torch.float32), dim=1)
    return pooled.cpu().numpy().astype(np.float32, copy=False)
