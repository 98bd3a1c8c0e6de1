"""open_clip encoders: loading (hub tag, local checkpoint, local dir or explicit untrained
weights), fingerprinting, dense image features, instance embeddings and text embeddings."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from knnvocab.embed.dense import check_vit, pool_masks, preprocess, target_size
from knnvocab.embed.prompts import DEFAULT_PROMPTS, PromptSet
from knnvocab.embed.sources import WEIGHT_SOURCES
from knnvocab.embed.spec import EMBEDDING_METHODS, EncoderInfo, EncoderSpec, checkpoint_path
from knnvocab.embed.weights import HashCache, file_key, state_dict_sha256
from knnvocab.errors import EncoderError
from knnvocab.types import BoolArray, ImageArray, check_image

log = logging.getLogger(__name__)

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _model_name(spec: EncoderSpec) -> str:
    name = spec.model
    if name.startswith("local-dir:"):
        folder = Path(name.removeprefix("local-dir:")).expanduser()
        if not (folder / "open_clip_config.json").is_file():
            raise EncoderError(
                f"{folder}: not an open_clip model folder (no open_clip_config.json)"
            )
        return f"local-dir:{folder.resolve()}"
    if name.endswith(".json"):
        path = Path(name).expanduser().resolve()
        if not path.is_file():
            raise EncoderError(f"{path}: model config file not found")
        try:
            cfg = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise EncoderError(f"{path}: cannot read model config ({exc})") from None
        if not all(k in cfg for k in ("embed_dim", "vision_cfg", "text_cfg")):
            raise EncoderError(f"{path}: not an open_clip model config (embed_dim, vision_cfg, …)")
        open_clip.add_model_config(path)
        return path.stem
    if name not in open_clip.list_models():
        raise EncoderError(f"unknown open_clip model {name!r} (`knnvocab models` lists them)")
    return name


def _config_sha256(model_name: str) -> str:
    if model_name.startswith("local-dir:"):
        cfg_path = Path(model_name.removeprefix("local-dir:")) / "open_clip_config.json"
        cfg = json.loads(cfg_path.read_text()).get("model_cfg", {})
    else:
        cfg = open_clip.get_model_config(model_name) or {}
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()


def _create(spec: EncoderSpec, name: str, cache_dir: Path) -> torch.nn.Module:
    kwargs: dict[str, Any] = {"cache_dir": str(cache_dir / "open_clip")}
    try:
        return WEIGHT_SOURCES[spec.source](spec, name, kwargs)
    except EncoderError:
        raise
    except Exception as exc:  # open_clip raises bare RuntimeError/ValueError/OSError/…
        reason = " ".join(str(exc).split())[:300]
        hint = ""
        if spec.source == "hub":
            hint = (
                " — this machine may have no access to the model hub: pass --checkpoint FILE "
                "with local weights, or --untrained for an explicit untrained run"
            )
        raise EncoderError(f"cannot load encoder {spec.describe()}: {reason}{hint}") from None


def _to_device(model: torch.nn.Module, device: torch.device | str) -> torch.nn.Module:
    try:
        return model.to(torch.device(device))
    # torch says "Torch not compiled with CUDA enabled" (AssertionError), "No CUDA GPUs
    # are available", "Expected one of cpu, cuda, … device type" (RuntimeError), …
    except (AssertionError, RuntimeError) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise EncoderError(
            f"cannot use torch device {str(device)!r} (KNNVOCAB_DEVICE): {reason}"
        ) from None


def _weights_key(spec: EncoderSpec, name: str, cache_dir: Path) -> str | None:
    if spec.source == "checkpoint":
        path = checkpoint_path(spec)
        return file_key(path) if path else None
    if spec.source == "untrained":
        return f"untrained:{_config_sha256(name)}:{spec.seed}:{torch.__version__}"
    if spec.source == "hub":
        return f"hub:{name}:{spec.pretrained}:{cache_dir}"
    return None


class OpenClipEncoder:
    """An open_clip model with a dense image path (its spec's embedding method, e.g.
    MaskCLIP) and a text path.

    Ingest and query use the same `embed_instances`, so stored and query embeddings live
    in one space.
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, info: EncoderInfo) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.info = info
        cfg = getattr(model.visual, "preprocess_cfg", None) or {}
        self.mean = tuple(cfg.get("mean", OPENAI_MEAN))
        self.std = tuple(cfg.get("std", OPENAI_STD))
        self._text_cache: dict[tuple[PromptSet, str], np.ndarray] = {}
        self._dense = EMBEDDING_METHODS[info.spec.method]()

    @classmethod
    def load(
        cls, spec: EncoderSpec, cache_dir: Path, device: torch.device | str = "cpu"
    ) -> OpenClipEncoder:
        """Build the model on the CPU, move it to ``device`` (``cpu``, ``cuda``, ``cuda:1``,
        ``mps``, …), load its weights and compute its fingerprint (independent of the
        device)."""
        name = _model_name(spec)
        model = _to_device(_create(spec, name, cache_dir), device).eval()
        check_vit(model.visual)
        key = _weights_key(spec, name, cache_dir)
        hashes = HashCache(cache_dir / "weights-sha256.json")
        sha = hashes.get(key) if key else None
        if sha is None:
            sha = state_dict_sha256(model.state_dict())
            if key:
                hashes.put(key, sha)
        visual: Any = model.visual
        native = int(visual.image_size[0])
        info = EncoderInfo(
            spec=spec,
            model_name=name,
            model_config_sha256=_config_sha256(name),
            weights_sha256=sha,
            dim=int(visual.proj.shape[1]),
            resolution=spec.resolution or native,
            patch_size=int(visual.conv1.kernel_size[0]),
        )
        return cls(model, open_clip.get_tokenizer(name), info)

    @property
    def dim(self) -> int:
        return self.info.dim

    @property
    def device(self) -> torch.device:
        """Where the model's parameters live; every tensor the encoder returns is there."""
        return next(self.model.parameters()).device

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The (H', W') an image of (height, width) is resized to before the forward."""
        return target_size(height, width, self.info.resolution, self.info.patch_size)

    def dense_features(
        self, images: Sequence[ImageArray], batch_size: int = 8
    ) -> list[torch.Tensor]:
        """Dense features of each image: a list of (h, w, D) float32 tensors (unnormalised)
        on `device`.

        Images of equal encoder input size are batched together.
        """
        out: list[torch.Tensor | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            check_image(image)
            groups.setdefault(self.input_size(*image.shape[:2]), []).append(i)
        visual: Any = self.model.visual
        device = self.device
        for size, indices in groups.items():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                x = torch.cat(
                    [preprocess(images[i], size, self.mean, self.std, device) for i in chunk]
                )
                feats = self._dense(visual, x)
                for i, f in zip(chunk, feats, strict=True):
                    out[i] = f
        return [f for f in out if f is not None]

    def embed_instances(self, features: torch.Tensor, masks: BoolArray) -> np.ndarray:
        """(h, w, D) features (any device) + (N, H, W) bool masks -> (N, D) float32 unit
        vectors (NumPy)."""
        if masks.shape[0] == 0:
            return np.zeros((0, self.dim), np.float32)
        return pool_masks(features, masks)

    def _encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        encode: Any = getattr(self.model, "encode_text")  # noqa: B009  (open_clip models)
        out: torch.Tensor = encode(tokens)
        return out

    @torch.inference_mode()
    def embed_texts(self, names: Sequence[str], prompts: PromptSet = DEFAULT_PROMPTS) -> np.ndarray:
        """(C, D) float32 unit vectors: each class name's prompt-ensemble embedding."""
        missing = [n for n in dict.fromkeys(names) if (prompts, n) not in self._text_cache]
        for name in missing:
            tokens = self.tokenizer(prompts.prompts_for(name)).to(self.device)
            emb = self._encode_text(tokens)
            emb = F.normalize(F.normalize(emb, dim=-1).mean(dim=0), dim=0)
            self._text_cache[prompts, name] = emb.cpu().numpy().astype(np.float32)
        if not names:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._text_cache[prompts, n] for n in names])

    @property
    def logit_scale(self) -> float:
        scale = getattr(self.model, "logit_scale", None)
        return float(scale.detach().exp()) if isinstance(scale, torch.Tensor) else 100.0
