"""The continual-vocabulary protocol: classes arrive in stages; after each stage, mIoU on
old and new classes, with retrieval and with zero-shot alone, and forgetting.

The classes of a labelled dataset (those with instances) are shuffled with a seed and
split into S stages; its images are split into an ingestion set and held-out images. Stage
s ingests the ingestion images restricted to stage s's classes into a fresh domain
(version s); then the held-out images are segmented at version s and scored against the
full ground truth (a class not yet seen cannot be predicted, so its pixels are errors at
every stage alike). mIoU is reported over the classes seen so far, split into old (earlier
stages) and new (this stage); a later stage can lower an old class's IoU only by taking its
pixels, which is what forgetting measures.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from knnvocab.datasets.base import DatasetReader, SampleRef
from knnvocab.embed.spec import EncoderSpec
from knnvocab.engine.params import SegmentParams
from knnvocab.errors import ConfigError
from knnvocab.evaluate.run import Scorer
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.progress import NoProgress, Progress
from knnvocab.workspace import Workspace


@dataclass(frozen=True)
class StageResult:
    """Scores after one stage (mIoU in [0, 1]; NaN where a subset has no ground truth)."""

    stage: int
    version: int
    new_classes: list[str]
    seen_classes: int
    instances_added: int
    miou_all: float
    miou_old: float
    miou_new: float
    zero_shot_all: float
    zero_shot_old: float
    zero_shot_new: float
    per_class_iou: dict[str, float | None]


@dataclass(frozen=True)
class ContinualReport:
    stages: list[StageResult]
    forgetting: float
    zero_shot_forgetting: float
    held_out: list[str]
    seed: int
    params: dict[str, Any]
    class_order: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            if isinstance(v, float) and np.isnan(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v

        return clean(asdict(self))  # type: ignore[no-any-return]


def split_classes(present: list[int], stages: int, seed: int) -> list[list[int]]:
    """Shuffle the present class indices with ``seed`` and cut them into ``stages``."""
    if not 1 <= stages <= len(present):
        raise ConfigError(f"--stages must be between 1 and {len(present)} (classes present)")
    order = sorted(present)
    random.Random(seed).shuffle(order)
    return [list(chunk) for chunk in np.array_split(np.array(order), stages)]


def split_images(
    refs: list[SampleRef], held_out: float, seed: int
) -> tuple[list[SampleRef], list[SampleRef]]:
    """(ingestion images, held-out images); at least one of each."""
    if len(refs) < 2:
        raise ConfigError("the continual protocol needs at least 2 images (ingest + held out)")
    order = list(refs)
    random.Random(seed + 1).shuffle(order)
    n = min(max(1, round(held_out * len(order))), len(order) - 1)
    return sorted(order[n:], key=lambda r: r.key), sorted(order[:n], key=lambda r: r.key)


def _mean(per_class: np.ndarray, indices: list[int]) -> float:
    values = per_class[indices] if indices else np.array([])
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def _score(
    ws: Workspace,
    domain: str,
    reader: DatasetReader,
    refs: list[SampleRef],
    version: int,
    params: SegmentParams,
) -> np.ndarray:
    from knnvocab.engine.segmenter import Segmenter

    segmenter = Segmenter(ws, domain, version, params)
    scorer = Scorer(reader)
    for ref in refs:
        sample = reader.load(ref)
        scorer.add(segmenter.segment(sample.image, ref.files[0]), sample.instances)
    return scorer.semantic.result().per_class_iou


def forgetting(history: list[np.ndarray], stages: list[list[int]]) -> float:
    """Mean over classes learned before the last stage of (best earlier IoU − final IoU)."""
    drops = []
    for s, classes in enumerate(stages[:-1]):
        for c in classes:
            earlier = [h[c] for h in history[s:-1] if not np.isnan(h[c])]
            final = history[-1][c]
            if earlier and not np.isnan(final):
                drops.append(max(earlier) - final)
    return float(np.mean(drops)) if drops else float("nan")


def present_classes(reader: DatasetReader, refs: list[SampleRef]) -> list[int]:
    """Dataset class indices with at least one (non-crowd) instance in ``refs``."""
    found: set[int] = set()
    for ref in refs:
        instances = reader.load(ref).instances
        found.update(int(c) for c in instances.class_ids[~instances.crowd])
    return sorted(found)


def run_continual(
    ws: Workspace,
    reader: DatasetReader,
    stages: int,
    encoder: EncoderSpec,
    domain: str = "continual",
    seed: int = 0,
    held_out: float = 0.25,
    params: SegmentParams | None = None,
    progress: Progress | None = None,
    *,
    actor: str,
) -> ContinualReport:
    """Run the protocol in ``domain`` (which must not exist yet) of ``ws``; its versions
    are made by ``actor``."""
    params = params or SegmentParams()
    progress = progress or NoProgress()
    train, test = split_images(reader.samples(), held_out, seed)
    plan = split_classes(present_classes(reader, train), stages, seed)
    keys = tuple(r.key for r in train)
    history: list[np.ndarray] = []
    zero_history: list[np.ndarray] = []
    results = []
    progress.start(len(plan), 0)
    for s, classes in enumerate(plan, 1):
        names = tuple(reader.class_names[c] for c in classes)
        options = IngestOptions(
            reader.format, classes=names, only_keys=keys, message=f"continual stage {s}/{stages}"
        )
        summary = ingest(ws, domain, reader, options, encoder, actor=actor)
        history.append(_score(ws, domain, reader, test, summary.version, params))
        zero = SegmentParams(**{**asdict(params), "zero_shot_only": True})
        zero_history.append(_score(ws, domain, reader, test, summary.version, zero))
        results.append(
            _stage_result(
                s, summary.version, reader, plan, history[-1], zero_history[-1], summary.total_added
            )
        )
        progress.advance(1, summary.total_added)
    progress.finish()
    return ContinualReport(
        stages=results,
        forgetting=forgetting(history, plan),
        zero_shot_forgetting=forgetting(zero_history, plan),
        held_out=[r.key for r in test],
        seed=seed,
        params=params.to_json(),
        class_order=[reader.class_names[c] for stage in plan for c in stage],
    )


def _stage_result(
    s: int,
    version: int,
    reader: DatasetReader,
    plan: list[list[int]],
    iou: np.ndarray,
    zero: np.ndarray,
    added: int,
) -> StageResult:
    old = [c for stage in plan[: s - 1] for c in stage]
    new = plan[s - 1]
    seen = old + new
    return StageResult(
        stage=s,
        version=version,
        new_classes=[reader.class_names[c] for c in new],
        seen_classes=len(seen),
        instances_added=added,
        miou_all=_mean(iou, seen),
        miou_old=_mean(iou, old),
        miou_new=_mean(iou, new),
        zero_shot_all=_mean(zero, seen),
        zero_shot_old=_mean(zero, old),
        zero_shot_new=_mean(zero, new),
        per_class_iou={
            reader.class_names[c]: None if np.isnan(iou[c]) else float(iou[c]) for c in seen
        },
    )
