"""What identifies an encoder: how to load it and its fingerprint.

This module does not import torch, so the catalog and the CLI can use it cheaply.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from knnvocab.errors import ConfigError

if TYPE_CHECKING:
    import torch

#: bumped whenever the embedding code changes its output: part of every fingerprint, so
#: vectors made by different code are never mixed
EMBEDDING_CODE_VERSION = 2


class DenseFeatures(Protocol):
    """An embedding method: (B, 3, H', W') normalised images -> (B, h, w, D) dense
    features in the joint space, for an open_clip image tower ``visual``."""

    def __call__(self, visual: Any, x: torch.Tensor, /) -> torch.Tensor: ...


def _maskclip() -> DenseFeatures:
    """ViT value-embedding path in the last block (no q/k, residual or MLP), then ln_post
    and the projection (MaskCLIP, Zhou et al. 2022)"""
    from knnvocab.embed.dense import maskclip_features

    return maskclip_features


#: embedding method -> builder returning its dense-feature function (imported lazily:
#: this module does not import torch); the key is part of every fingerprint
EMBEDDING_METHODS: dict[str, Callable[[], DenseFeatures]] = {"maskclip": _maskclip}
DEFAULT_METHOD = "maskclip"


def list_methods() -> dict[str, str]:
    """Embedding method -> one-line description, sorted by name."""
    return {
        name: " ".join((EMBEDDING_METHODS[name].__doc__ or "").split())
        for name in sorted(EMBEDDING_METHODS)
    }


@dataclass(frozen=True)
class EncoderSpec:
    """How to build an open_clip encoder.

    Exactly one weight source: ``pretrained`` (an open_clip hub tag, e.g. ``openai``),
    ``checkpoint`` (a local weights file), ``untrained`` (random weights from ``seed``,
    for offline runs only), or a ``model`` of the form ``local-dir:PATH`` (open_clip's
    own config + weights folder). ``model`` may also be the path of an open_clip model
    config JSON file. ``resolution`` is the short image side in pixels fed to the
    encoder (None: the model's native size).
    """

    model: str
    pretrained: str | None = None
    checkpoint: str | None = None
    untrained: bool = False
    method: str = DEFAULT_METHOD
    resolution: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        sources = [self.pretrained is not None, self.checkpoint is not None, self.untrained]
        local_dir = self.model.startswith("local-dir:")
        if sum(sources) + int(local_dir) != 1:
            raise ConfigError(
                f"encoder {self.model!r}: give exactly one weight source "
                "(--pretrained TAG, --checkpoint FILE, --untrained, or a local-dir: model)"
            )
        if self.method not in EMBEDDING_METHODS:
            raise ConfigError(
                f"unknown embedding method {self.method!r} (known: {list(EMBEDDING_METHODS)})"
            )
        if self.resolution is not None and not 32 <= self.resolution <= 4096:
            raise ConfigError(f"resolution {self.resolution} is outside 32..4096 pixels")

    @property
    def source(self) -> str:
        if self.model.startswith("local-dir:"):
            return "local-dir"
        if self.untrained:
            return "untrained"
        return "checkpoint" if self.checkpoint is not None else "hub"

    def describe(self) -> str:
        extra = {
            "hub": f"/{self.pretrained}",
            "checkpoint": f" from {self.checkpoint}",
            "local-dir": "",
            "untrained": f" UNTRAINED (seed {self.seed})",
        }[self.source]
        return f"{self.model}{extra}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EncoderSpec:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class EncoderInfo:
    """A loaded encoder's identity, as the catalog records it."""

    spec: EncoderSpec
    model_name: str
    model_config_sha256: str
    weights_sha256: str
    dim: int
    resolution: int
    patch_size: int

    @property
    def fingerprint(self) -> str:
        """sha256 of everything that changes the embedding space."""
        parts = {
            "model": self.model_name,
            "model_config_sha256": self.model_config_sha256,
            "pretrained": self.spec.pretrained,
            "source": self.spec.source,
            "weights_sha256": self.weights_sha256,
            "method": self.spec.method,
            "resolution": self.resolution,
            "code_version": EMBEDDING_CODE_VERSION,
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    @property
    def collection(self) -> str:
        """The vector collection of this encoder (one per fingerprint)."""
        return f"knnvocab_{self.fingerprint[:16]}"


def checkpoint_path(spec: EncoderSpec) -> Path | None:
    return Path(spec.checkpoint).expanduser().resolve() if spec.checkpoint else None
