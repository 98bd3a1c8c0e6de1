"""Dense features and pooling: geometry, exact coverage weights, and the MaskCLIP path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from knnvocab.embed.dense import (
    interpolate_pos_embed,
    mask_weights,
    patch_index,
    pool_masks,
    segment_weights,
    target_size,
)


@pytest.mark.parametrize(("h", "w"), [(375, 500), (500, 375), (64, 2000), (224, 224), (7, 9)])
def test_target_size_keeps_aspect_and_patch_multiples(h: int, w: int) -> None:
    th, tw = target_size(h, w, 224, 16)
    assert th % 16 == 0 and tw % 16 == 0
    assert max(th, tw) <= 4 * 224 + 16
    if max(h, w) / min(h, w) <= 4:
        assert abs(th / tw - h / w) < 0.15
        assert min(th, tw) == 224


def test_coverage_weights_are_exact_fractions() -> None:
    rng = np.random.default_rng(0)
    seg = rng.integers(0, 6, (50, 70))
    grid = (4, 5)
    masks = seg[None] == np.arange(1, 6)[:, None, None]
    by_masks, by_map = mask_weights(masks, grid), segment_weights(seg, 5, grid)
    assert torch.equal(by_masks, by_map)
    index = patch_index(50, 70, grid)
    for n in range(5):
        for cell in range(20):
            in_cell = index == cell
            expected = (masks[n] & in_cell).sum() / in_cell.sum()
            assert by_masks[n, cell].item() == pytest.approx(expected, abs=1e-7)
    # every pixel in exactly one segment (incl. 0): coverage sums to one per patch
    everything = segment_weights(seg + 1, 6, grid)
    np.testing.assert_allclose(everything.sum(dim=0).numpy(), 1.0, atol=1e-6)


def test_pooling_one_patch_gives_that_patch() -> None:
    features = torch.randn(4, 5, 8)
    mask = np.zeros((1, 40, 50), bool)
    mask[0, 10:20, 20:30] = True  # exactly patch (1, 2) of a 4 x 5 grid of 10 x 10 pixels
    pooled = pool_masks(features, mask)
    expected = torch.nn.functional.normalize(features[1, 2], dim=0).numpy()
    np.testing.assert_allclose(pooled[0], expected, atol=1e-6)
    assert np.linalg.norm(pooled[0]) == pytest.approx(1.0, abs=1e-6)


def test_empty_mask_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one pixel"):
        pool_masks(torch.randn(2, 2, 4), np.zeros((1, 8, 8), bool))


def test_positional_embedding_interpolation() -> None:
    pos = torch.randn(1 + 14 * 14, 32)
    assert interpolate_pos_embed(pos, (14, 14)) is pos
    out = interpolate_pos_embed(pos, (10, 21))
    assert out.shape == (1 + 210, 32)
    assert torch.equal(out[0], pos[0])  # the class token's embedding is kept
