"""Hashing model weights, with a small on-disk cache so each process pays it once."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)


def state_dict_sha256(state: dict[str, Any]) -> str:
    """sha256 over a state dict's tensors: names, dtypes, shapes and bytes, sorted by name.

    Independent of the file format the weights came in (.pt, .safetensors, hub).
    """
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name]
        if not isinstance(tensor, torch.Tensor):
            continue
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        digest.update(np.ascontiguousarray(t.numpy()).tobytes())
    return digest.hexdigest()


class HashCache:
    """Remembers weight hashes by a key that changes whenever the weights could."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> str | None:
        return self._load().get(key)

    def put(self, key: str, value: str) -> None:
        data = self._load()
        data[key] = value
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, indent=0, sort_keys=True))
            tmp.replace(self.path)
        except OSError as exc:  # a full disk: the next process hashes the weights again
            tmp.unlink(missing_ok=True)
            log.warning("weight hash cache %s not saved: %s", self.path, exc)


def file_key(path: Path) -> str:
    """A cache key for a weights file: path, size and modification time."""
    st = path.stat()
    return f"file:{path}:{st.st_size}:{st.st_mtime_ns}"
