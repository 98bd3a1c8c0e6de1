"""The single pass: decode a batch of samples, pick their instances, embed, make points."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from knnvocab.store.base import StoredPoint, point_id
from knnvocab.store.payload import PointPayload
from knnvocab.types import LabelledImage

if TYPE_CHECKING:
    from knnvocab.embed.openclip import OpenClipEncoder


@dataclass(frozen=True)
class Target:
    """Where instances of one dataset class go: a domain class id and name."""

    class_id: int
    label: str


@dataclass(frozen=True)
class Selection:
    """Which dataset classes are ingested (``targets``) and which are skipped and why."""

    targets: dict[int, Target]
    skipped_classes: dict[int, str]  # dataset class index -> "retired" | "not selected"
    min_area: int

    def pick(self, sample: LabelledImage, skipped: Counter[str]) -> list[int]:
        """Indices of ``sample``'s instances to embed; counts the others in ``skipped``."""
        keep = []
        areas = sample.instances.areas
        for i, (cid, crowd) in enumerate(
            zip(sample.instances.class_ids, sample.instances.crowd, strict=True)
        ):
            reason = self.skipped_classes.get(int(cid))
            if reason is None and crowd:
                reason = "crowd"
            if reason is None and areas[i] < max(self.min_area, 1):
                reason = "smaller than min_area"
            if reason is None and int(cid) not in self.targets:
                reason = "not selected"
            if reason is None:
                keep.append(i)
            else:
                skipped[reason] += 1
        return keep


@dataclass(frozen=True)
class PointContext:
    """What every point of one ingest run shares."""

    domain: str
    dataset: str
    version: int
    run_id: str
    fingerprint: str


def instance_ids(sample: LabelledImage, keep: list[int], context: PointContext) -> list[str]:
    """The point ids of ``sample``'s instances ``keep`` (they depend on the domain,
    dataset, image and instance keys and encoder, not on the version or run)."""
    return [
        point_id(
            context.domain,
            context.dataset,
            sample.key,
            sample.instances.keys[j],
            context.fingerprint,
        )
        for j in keep
    ]


def embed_samples(
    encoder: OpenClipEncoder,
    samples: Sequence[LabelledImage],
    selection: Selection,
    context: PointContext,
    skipped: Counter[str],
    stored: Callable[[list[str]], set[str]],
) -> list[StoredPoint]:
    """Embed the selected instances of ``samples`` (one batched forward) into points.

    Instances whose point id is already ``stored`` are not embedded again (counted as
    "already stored"); an image with nothing new skips the forward pass.
    """
    picks = [selection.pick(s, skipped) for s in samples]
    known = stored(
        [
            pid
            for s, keep in zip(samples, picks, strict=True)
            for pid in instance_ids(s, keep, context)
        ]
    )
    for i, sample in enumerate(samples):
        ids = instance_ids(sample, picks[i], context)
        fresh = [j for j, pid in zip(picks[i], ids, strict=True) if pid not in known]
        skipped["already stored"] += len(picks[i]) - len(fresh)
        picks[i] = fresh
    wanted = [i for i, p in enumerate(picks) if p]
    features = encoder.dense_features([samples[i].image for i in wanted])
    points: list[StoredPoint] = []
    for i, feats in zip(wanted, features, strict=True):
        sample, keep = samples[i], picks[i]
        vectors = encoder.embed_instances(feats, sample.instances.masks[keep])
        areas = sample.instances.areas
        for row, (j, pid) in enumerate(zip(keep, instance_ids(sample, keep, context), strict=True)):
            target = selection.targets[int(sample.instances.class_ids[j])]
            instance = sample.instances.keys[j]
            points.append(
                StoredPoint(
                    id=pid,
                    vector=np.asarray(vectors[row], np.float32),
                    payload=PointPayload(
                        domain=context.domain,
                        class_id=target.class_id,
                        label=target.label,
                        added_in=context.version,
                        dataset=context.dataset,
                        run_id=context.run_id,
                        image=sample.key,
                        instance=instance,
                        area=int(areas[j]),
                    ),
                )
            )
    return points
