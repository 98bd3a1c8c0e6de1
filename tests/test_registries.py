"""Every registry is a plain dict of builders with a sorted `list_*()`, and every builder
builds: dataset formats, proposal methods, embedding methods and weight sources."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from knnvocab.datasets import FORMATS, DatasetReader, list_formats, reader_class
from knnvocab.embed.spec import EMBEDDING_METHODS, EncoderInfo, EncoderSpec, list_methods
from knnvocab.engine.proposals import (
    PROPOSALS,
    GroundTruth,
    MaskFolder,
    Slic,
    list_proposals,
    make_proposals,
)
from knnvocab.errors import ConfigError
from knnvocab.types import Instances

REGISTRIES = {
    "formats": (FORMATS, list_formats),
    "proposals": (PROPOSALS, list_proposals),
    "methods": (EMBEDDING_METHODS, list_methods),
}


@pytest.mark.parametrize("name", sorted(REGISTRIES))
def test_registry_is_a_plain_dict_listed_sorted_and_described(name: str) -> None:
    registry, lister = REGISTRIES[name]
    assert type(registry) is dict and registry
    listed = lister()
    assert list(listed) == sorted(registry)
    assert all(isinstance(d, str) and d for d in listed.values()), listed


def test_importing_the_registries_stays_cheap() -> None:
    heavy = ("torch", "open_clip", "knnvocab.datasets.coco")
    code = (
        "import sys, knnvocab.datasets, knnvocab.embed.spec; "
        f"loaded = [m for m in {heavy!r} if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_builds_its_reader_class(fmt: str) -> None:
    cls = FORMATS[fmt]()
    assert issubclass(cls, DatasetReader) and reader_class(fmt) is cls
    assert cls.format == fmt and cls.description


def test_unknown_format_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown dataset format 'kitti' \(known: ade20k-150"):
        reader_class("kitti")


def test_every_proposal_method_builds(tmp_path: Path) -> None:
    slic = make_proposals("slic", n_segments=16, compactness=5.0)
    assert isinstance(slic, Slic) and (slic.n_segments, slic.compactness) == (16, 5.0)
    masks = make_proposals(f"masks:{tmp_path}")
    assert isinstance(masks, MaskFolder) and masks.folder == tmp_path
    assert masks.name == f"masks:{tmp_path}"
    one = Instances(np.ones((1, 4, 4), bool), np.array([0]), ("obj1",))
    gt = make_proposals("gt", ground_truth=lambda path: one)
    assert isinstance(gt, GroundTruth) and gt.name == "gt"
    assert (gt(np.zeros((4, 4, 3), np.uint8), None) == 1).all()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("magic", "unknown proposals 'magic' (known: slic, masks, gt)"),
        ("masks", "masks proposals need a folder: masks:DIR"),
        ("slic:fast", "slic proposals take no argument (got slic:fast)"),
        ("gt", "gt proposals need a labelled dataset"),
    ],
)
def test_proposal_refusals(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_proposals(spec)
    assert message in str(err.value)


def test_every_embedding_method_builds_a_dense_feature_function() -> None:
    from knnvocab.embed.dense import maskclip_features

    assert all(callable(build()) for build in EMBEDDING_METHODS.values())
    assert EMBEDDING_METHODS["maskclip"]() is maskclip_features
    with pytest.raises(ConfigError) as err:
        EncoderSpec("ViT-B-16", pretrained="openai", method="dino")
    assert "unknown embedding method 'dino' (known: ['maskclip'])" in str(err.value)


@pytest.mark.parametrize(
    ("spec", "fingerprint"),
    [
        (
            EncoderSpec("ViT-B-16", pretrained="openai"),
            "316d95770e6a7328ac72172d007b67519c3331190a9efa5dd4e21685a80e5a6f",
        ),
        (
            EncoderSpec("ViT-B-16", untrained=True, seed=3),
            "56ed9e07a2ceac287a619d42c888395c34b8213899af195143141662bac14a0d",
        ),
    ],
)
def test_registry_keys_keep_fingerprints(spec: EncoderSpec, fingerprint: str) -> None:
    """The method and source keys are hashed into every fingerprint: these are the values
    of the code before the registries, and must never change."""
    info = EncoderInfo(spec, "ViT-B-16", "0" * 64, "1" * 64, 512, 224, 16)
    assert info.fingerprint == fingerprint


def test_weight_sources(tiny_model: EncoderSpec, tmp_path: Path) -> None:
    from knnvocab.embed.openclip import OpenClipEncoder
    from knnvocab.embed.sources import WEIGHT_SOURCES, list_sources
    from knnvocab.errors import UntrainedEncoderWarning

    assert type(WEIGHT_SOURCES) is dict
    assert list(list_sources()) == sorted(WEIGHT_SOURCES)
    assert sorted(WEIGHT_SOURCES) == ["checkpoint", "hub", "local-dir", "untrained"]
    assert all(list_sources().values())
    kinds = [
        EncoderSpec("ViT-B-16", pretrained="openai"),
        EncoderSpec("ViT-B-16", checkpoint="w.pt"),
        EncoderSpec(f"local-dir:{tmp_path}"),
        EncoderSpec("ViT-B-16", untrained=True),
    ]
    assert sorted(spec.source for spec in kinds) == sorted(WEIGHT_SOURCES)
    untrained = EncoderSpec(tiny_model.model, untrained=True, seed=3)
    # the warning points at whoever loaded the encoder
    with pytest.warns(UntrainedEncoderWarning, match="UNTRAINED") as record:
        OpenClipEncoder.load(untrained, tmp_path)
    assert record[0].filename == __file__


def test_models_command_lists_the_weight_sources() -> None:
    from typer.testing import CliRunner

    from knnvocab.cli import app
    from knnvocab.embed.sources import list_sources

    result = CliRunner().invoke(app, ["models", "--sources", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == list_sources()
