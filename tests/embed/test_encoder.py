"""The open_clip encoder: real loading paths, fingerprints, and what they refuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from knnvocab.embed.openclip import OpenClipEncoder
from knnvocab.embed.spec import EncoderSpec
from knnvocab.errors import ConfigError, EncoderError, UntrainedEncoderWarning
from knnvocab.imageio import load_rgb


def test_checkpoint_loading_and_fingerprint(
    tiny_model: EncoderSpec, tmp_path: Path, labelme_voc: Path
) -> None:
    a = OpenClipEncoder.load(tiny_model, tmp_path / "cache")
    again = OpenClipEncoder.load(tiny_model, tmp_path / "other-cache")
    assert a.info.fingerprint == again.info.fingerprint
    assert a.info.collection == f"knnvocab_{a.info.fingerprint[:16]}"
    state = torch.load(tiny_model.checkpoint, weights_only=True)  # type: ignore[arg-type]
    state["visual.proj"] = state["visual.proj"] * 2
    changed = tmp_path / "changed.pt"
    torch.save(state, changed)
    b = OpenClipEncoder.load(EncoderSpec(tiny_model.model, checkpoint=str(changed)), tmp_path / "c")
    assert b.info.fingerprint != a.info.fingerprint
    photo = load_rgb(next((labelme_voc / "JPEGImages").glob("*.jpg")))
    [features] = a.dense_features([photo])
    assert features.shape[-1] == a.dim == 64
    masks = np.zeros((2, *photo.shape[:2]), bool)
    masks[0, :100], masks[1, 100:] = True, True
    vectors = a.embed_instances(features, masks)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    text = a.embed_texts(["person", "bus", "person"])
    assert text.shape == (3, 64) and np.array_equal(text[0], text[2])


def test_resolution_and_method_are_part_of_the_fingerprint(
    tiny_model: EncoderSpec, tmp_path: Path
) -> None:
    base = OpenClipEncoder.load(tiny_model, tmp_path)
    spec = EncoderSpec(tiny_model.model, checkpoint=tiny_model.checkpoint, resolution=128)
    bigger = OpenClipEncoder.load(spec, tmp_path)
    assert bigger.info.resolution == 128 and base.info.resolution == 64
    assert bigger.info.fingerprint != base.info.fingerprint


def test_untrained_weights_are_loud_and_deterministic(
    tiny_model: EncoderSpec, tmp_path: Path
) -> None:
    spec = EncoderSpec(tiny_model.model, untrained=True, seed=3)
    with pytest.warns(UntrainedEncoderWarning, match="UNTRAINED"):
        a = OpenClipEncoder.load(spec, tmp_path)
    with pytest.warns(UntrainedEncoderWarning):
        b = OpenClipEncoder.load(spec, tmp_path / "again")
    assert a.info.weights_sha256 == b.info.weights_sha256
    assert spec.source == "untrained" and "UNTRAINED" in spec.describe()


def test_refusals(tiny_model: EncoderSpec, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one weight source"):
        EncoderSpec("ViT-B-16", pretrained="openai", untrained=True)
    with pytest.raises(ConfigError, match="exactly one weight source"):
        EncoderSpec("ViT-B-16")
    with pytest.raises(EncoderError, match="checkpoint file not found"):
        OpenClipEncoder.load(
            EncoderSpec(tiny_model.model, checkpoint=str(tmp_path / "no.pt")), tmp_path
        )
    with pytest.raises(EncoderError, match="unknown open_clip model"):
        OpenClipEncoder.load(EncoderSpec("No-Such-Model", untrained=True), tmp_path)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderError, match="cannot load encoder"):
        OpenClipEncoder.load(EncoderSpec(tiny_model.model, checkpoint=str(broken)), tmp_path)
