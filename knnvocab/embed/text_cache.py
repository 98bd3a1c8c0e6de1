"""Text embeddings of class names, cached on disk per encoder fingerprint and prompt set."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from knnvocab.embed.openclip import OpenClipEncoder
from knnvocab.embed.prompts import PromptSet

log = logging.getLogger(__name__)


class TextCache:
    """``names -> (C, D)`` text embeddings; computes only names it has not seen."""

    def __init__(self, encoder: OpenClipEncoder, folder: Path, prompts: PromptSet) -> None:
        self.encoder = encoder
        self.prompts = prompts
        self.path = folder / f"{encoder.info.fingerprint[:24]}-{prompts.key}.npz"
        self._vectors: dict[str, np.ndarray] = {}
        self._load()

    def _load(self) -> None:
        try:
            with np.load(self.path) as data:
                names, vectors = data["names"], data["vectors"]
        except (OSError, KeyError, ValueError):
            return
        if vectors.ndim == 2 and vectors.shape[1] == self.encoder.dim:
            self._vectors = {str(n): v for n, v in zip(names, vectors, strict=True)}

    def _save(self) -> None:
        tmp = self.path.with_name(f"{self.path.stem}.{os.getpid()}.tmp.npz")
        names = sorted(self._vectors)
        vectors = np.stack([self._vectors[n] for n in names])
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(tmp, names=np.array(names), vectors=vectors)
            tmp.replace(self.path)
        except OSError as exc:  # a full disk: the texts are embedded again next time
            tmp.unlink(missing_ok=True)
            log.warning("text embedding cache %s not saved: %s", self.path, exc)

    def embed(self, names: Sequence[str]) -> np.ndarray:
        """(C, D) float32 unit vectors for ``names``, in order."""
        missing = [n for n in dict.fromkeys(names) if n not in self._vectors]
        if missing:
            vectors = self.encoder.embed_texts(missing, self.prompts)
            self._vectors.update(zip(missing, vectors, strict=True))
            self._save()
        if not names:
            return np.zeros((0, self.encoder.dim), np.float32)
        return np.stack([self._vectors[n] for n in names]).astype(np.float32)
