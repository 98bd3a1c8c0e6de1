"""Where an encoder's weights come from: a registry from weight source to builder.

The source names (`EncoderSpec.source`) are part of every encoder fingerprint and
recorded in the catalog. A builder makes the open_clip model on the CPU; loading errors
other than `EncoderError` are turned into one message by the caller.
"""

from __future__ import annotations

import socket
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import open_clip
import torch

from knnvocab.embed.spec import EncoderSpec, checkpoint_path
from knnvocab.errors import EncoderError, UntrainedEncoderWarning

HUB_HOST = ("huggingface.co", 443)

#: (spec, open_clip model name, keyword arguments of open_clip.create_model) -> model
WeightSource = Callable[[EncoderSpec, str, dict[str, Any]], torch.nn.Module]


def _build(name: str, **kwargs: Any) -> torch.nn.Module:
    model: torch.nn.Module = open_clip.create_model(name, **kwargs)
    return model


def _hub_reachable(timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


@contextmanager
def _hub_offline() -> Iterator[None]:
    """Make huggingface_hub use its local cache only (no network, no retries)."""
    import huggingface_hub.constants as hf_constants

    before = hf_constants.HF_HUB_OFFLINE
    hf_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hf_constants.HF_HUB_OFFLINE = before


def _hub(spec: EncoderSpec, name: str, kwargs: dict[str, Any]) -> torch.nn.Module:
    """an open_clip hub tag (--pretrained TAG): the local cache first, then the hub"""
    # the cache first: offline, a hub miss would otherwise retry for about a minute
    try:
        with _hub_offline():
            return _build(name, pretrained=spec.pretrained, **kwargs)
    except Exception:
        if not _hub_reachable():
            raise EncoderError(
                f"cannot load encoder {spec.describe()}: its weights are not in the local "
                f"cache and the model hub ({HUB_HOST[0]}) is unreachable — pass "
                "--checkpoint FILE with local weights, or --untrained for an explicit "
                "untrained run"
            ) from None
    return _build(name, pretrained=spec.pretrained, **kwargs)


def _checkpoint(spec: EncoderSpec, name: str, kwargs: dict[str, Any]) -> torch.nn.Module:
    """a local weights file (--checkpoint FILE), loaded with weights_only=True"""
    path = checkpoint_path(spec)
    if path is None or not path.is_file():
        raise EncoderError(f"{path}: checkpoint file not found")
    return _build(name, pretrained=str(path), weights_only=True, **kwargs)


def _local_dir(spec: EncoderSpec, name: str, kwargs: dict[str, Any]) -> torch.nn.Module:
    """open_clip's own config + weights folder (--model local-dir:PATH)"""
    return _build(name, **kwargs)


def _untrained(spec: EncoderSpec, name: str, kwargs: dict[str, Any]) -> torch.nn.Module:
    """random weights from a fixed seed (--untrained), loudly flagged: offline runs only"""
    warnings.warn(
        f"encoder {name} has UNTRAINED random weights (seed {spec.seed}): "
        "embeddings and zero-shot predictions are not meaningful",
        UntrainedEncoderWarning,
        stacklevel=4,  # the caller of OpenClipEncoder.load
    )
    torch.manual_seed(spec.seed)
    return _build(name, **kwargs)


#: weight source (`EncoderSpec.source`) -> builder
WEIGHT_SOURCES: dict[str, WeightSource] = {
    "hub": _hub,
    "checkpoint": _checkpoint,
    "local-dir": _local_dir,
    "untrained": _untrained,
}


def list_sources() -> dict[str, str]:
    """Weight source -> one-line description, sorted by name."""
    return {
        name: " ".join((WEIGHT_SOURCES[name].__doc__ or "").split())
        for name in sorted(WEIGHT_SOURCES)
    }
