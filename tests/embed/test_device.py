"""KNNVOCAB_DEVICE: every tensor follows the encoder's device, and CUDA agrees with the CPU
on real photos (instance embeddings, and the labels of a whole ingest + segment)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch

from knnvocab.config import Settings
from knnvocab.datasets import open_dataset
from knnvocab.embed.dense import segment_weights
from knnvocab.embed.openclip import OpenClipEncoder
from knnvocab.embed.spec import EncoderSpec
from knnvocab.engine.scoring import zero_shot
from knnvocab.engine.segmenter import Segmenter
from knnvocab.errors import EncoderError
from knnvocab.imageio import load_rgb
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.workspace import Workspace

requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device (torch.cuda.is_available() is False)"
)

Names = npt.NDArray[np.str_]


def _instance_embeddings(encoder: OpenClipEncoder, voc: Path) -> np.ndarray:
    """(N, D) float32: every object instance of the VOC photos, mask-pooled."""
    reader = open_dataset("voc", voc)
    samples = [reader.load(ref) for ref in reader.samples()]
    features = encoder.dense_features([s.image for s in samples])
    return np.concatenate(
        [
            encoder.embed_instances(f, s.instances.masks)
            for f, s in zip(features, samples, strict=True)
        ]
    )


def _settings(root: Path, device: str) -> Settings:
    """SQLite + the embedded store under ``root``: the device tests need no Postgres."""
    return Settings(
        home=root,
        database_url=f"sqlite:///{root / 'catalog.sqlite3'}",
        device=device,
        user="tester",
    )


def _ingest_and_segment(settings: Settings, spec: EncoderSpec, voc: Path) -> list[Names]:
    """Ingest the VOC photos into a fresh domain and segment each of them (SLIC proposals,
    default parameters): per photo, the (H, W) class name of every pixel ("" unlabelled)."""
    with Workspace(settings) as ws:
        ingest(ws, "kitchen", voc, IngestOptions("voc", min_area=1), spec, actor="tester")
        segmenter = Segmenter(ws, "kitchen")
        assert segmenter.encoder.device.type == torch.device(settings.device).type
        out = []
        for photo in sorted((voc / "JPEGImages").glob("*.jpg")):
            seg = segmenter.segment(load_rgb(photo), photo)
            ids, inverse = np.unique(seg.labels, return_inverse=True)
            names = np.array([seg.names.get(int(i), "") for i in ids])
            out.append(names[inverse].reshape(seg.labels.shape))
        return out


def test_encoder_outputs_follow_an_explicit_cpu_device(
    tiny_model: EncoderSpec, tmp_path: Path, labelme_voc: Path
) -> None:
    default = OpenClipEncoder.load(tiny_model, tmp_path / "cache")
    explicit = OpenClipEncoder.load(tiny_model, tmp_path / "cache", device="cpu")
    assert default.device == explicit.device == torch.device("cpu")
    photo = load_rgb(next((labelme_voc / "JPEGImages").glob("*.jpg")))
    [features] = explicit.dense_features([photo])
    assert features.device == explicit.device and features.dtype == torch.float32
    vectors = _instance_embeddings(explicit, labelme_voc)
    assert vectors.dtype == np.float32 and len(vectors) > 0
    np.testing.assert_array_equal(vectors, _instance_embeddings(default, labelme_voc))
    text = explicit.embed_texts(["person", "bottle"])
    assert isinstance(text, np.ndarray) and text.dtype == np.float32
    segments = np.arange(photo.shape[0] * photo.shape[1]).reshape(photo.shape[:2]) % 3 + 1
    weights = segment_weights(segments, 3, (features.shape[0], features.shape[1]))
    p_base = zero_shot(features, text, weights, explicit.logit_scale)
    assert p_base.dtype == np.float32 and p_base.shape == (3, 2)


def test_ingest_and_segment_on_an_explicit_cpu_device(
    tiny_model: EncoderSpec, tmp_path: Path, labelme_voc: Path
) -> None:
    labels = _ingest_and_segment(_settings(tmp_path, "cpu"), tiny_model, labelme_voc)
    photos = sorted((labelme_voc / "JPEGImages").glob("*.jpg"))
    assert [a.shape for a in labels] == [load_rgb(p).shape[:2] for p in photos]
    predicted = set(np.unique(np.concatenate([a.ravel() for a in labels]))) - {""}
    assert predicted and predicted <= set(open_dataset("voc", labelme_voc).class_names)


@pytest.mark.parametrize(
    "device",
    [
        "no-such-device",
        pytest.param(
            "cuda",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device exists"),
        ),
    ],
)
def test_an_unusable_device_is_a_clean_error(
    tiny_model: EncoderSpec, tmp_path: Path, device: str
) -> None:
    with pytest.raises(EncoderError, match=f"cannot use torch device '{device}'"):
        OpenClipEncoder.load(tiny_model, tmp_path, device=device)


@pytest.mark.gpu
@requires_cuda
def test_cuda_instance_embeddings_match_the_cpu(
    tiny_model: EncoderSpec, tmp_path: Path, labelme_voc: Path
) -> None:
    # separate caches: each fingerprint is hashed from the weights where they live
    cpu = OpenClipEncoder.load(tiny_model, tmp_path / "cpu", device="cpu")
    cuda = OpenClipEncoder.load(tiny_model, tmp_path / "cuda", device="cuda")
    assert cuda.device.type == "cuda" and cuda.info.fingerprint == cpu.info.fingerprint
    photo = load_rgb(next((labelme_voc / "JPEGImages").glob("*.jpg")))
    assert cuda.dense_features([photo])[0].device == cuda.device
    on_cpu = _instance_embeddings(cpu, labelme_voc)
    on_cuda = _instance_embeddings(cuda, labelme_voc)
    assert on_cuda.dtype == np.float32 and on_cuda.shape == on_cpu.shape
    cosines = (on_cpu * on_cuda).sum(axis=1)
    assert cosines.min() >= 0.999, cosines.min()
    names = ["person", "bottle", "dining table"]
    text_cosines = (cpu.embed_texts(names) * cuda.embed_texts(names)).sum(axis=1)
    assert text_cosines.min() >= 0.999, text_cosines.min()


@pytest.mark.gpu
@requires_cuda
def test_cuda_ingest_and_segment_label_like_the_cpu(
    tiny_model: EncoderSpec, tmp_path: Path, labelme_voc: Path
) -> None:
    on_cpu = _ingest_and_segment(_settings(tmp_path / "cpu", "cpu"), tiny_model, labelme_voc)
    on_cuda = _ingest_and_segment(_settings(tmp_path / "cuda", "cuda"), tiny_model, labelme_voc)
    for a, b in zip(on_cpu, on_cuda, strict=True):
        agreement = float((a == b).mean())
        assert agreement >= 0.99, f"only {agreement:.2%} of the pixels have the same label"
