"""Shared by the benchmarks: real labelled photos replicated into a dataset, and timing."""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

EXAMPLES = Path("/usr/share/doc/labelme-examples/examples")
VOC = EXAMPLES / "instance_segmentation" / "data_dataset_voc"
VIDEO = EXAMPLES / "video_annotation" / "data_dataset_voc"


def replicated_voc(root: Path, copies: int) -> Path:
    """An index-mask dataset of the real VOC and video photos, each ``copies`` times under
    new names (distinct keys, so every copy is a new instance)."""
    if root.exists():
        shutil.rmtree(root)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    names: list[str] = []
    for source in (VOC, VIDEO):
        local = (source / "class_names.txt").read_text().split("\n")
        local = [n for n in local if n]
        names += [n for n in local if n not in names]
        mapping = [names.index(n) for n in local]
        for jpg in sorted((source / "JPEGImages").glob("*.jpg")):
            png = source / "SegmentationClassPNG" / f"{jpg.stem}.png"
            for i in range(copies):
                shutil.copy(jpg, root / "images" / f"{jpg.stem}_{i:03d}.jpg")
                _write_mask(png, root / "masks" / f"{jpg.stem}_{i:03d}.png", mapping)
    (root / "class_names.txt").write_text("\n".join(names) + "\n")
    return root


def _write_mask(src: Path, dst: Path, mapping: list[int]) -> None:
    import numpy as np
    from PIL import Image

    with Image.open(src) as img:
        labels = np.asarray(img).astype(np.int64)
    lut = np.full(256, 255, np.int64)
    lut[: len(mapping)] = mapping
    Image.fromarray(lut[labels].astype(np.uint8)).save(dst)


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device``: the torch device the encoder runs on (default: the settings' device,
    i.e. KNNVOCAB_DEVICE, else cpu)."""
    from knnvocab.config import Settings

    default = Settings.from_env().device
    parser.add_argument(
        "--device", default=default, help=f"torch device, e.g. cpu, cuda (default {default})"
    )


def synchronize(device: torch.device) -> None:
    """Wait for the kernels queued on ``device``: CUDA runs them asynchronously, so a timer
    stopped without this measures only their launch."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description="Write the real labelled photos of labelme-examples (3 VOC photos, 5 "
        "video frames) as one index-mask dataset with a unified class list."
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--copies", type=int, default=1)
    args = parser.parse_args()
    print(replicated_voc(args.out, args.copies))
