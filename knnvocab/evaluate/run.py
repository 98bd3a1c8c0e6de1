"""Evaluating a domain on a labelled dataset: segment every image, accumulate semantic and
panoptic metrics in the dataset's own label space."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from knnvocab.datasets.base import DatasetReader, SampleRef
from knnvocab.engine.params import SegmentParams
from knnvocab.engine.result import Segmentation
from knnvocab.evaluate.metrics import Convention, SemanticConfusion, SemanticResult
from knnvocab.evaluate.panoptic import PanopticAccumulator, PanopticMap, PanopticResult, Segment
from knnvocab.progress import NoProgress, Progress
from knnvocab.types import Instances
from knnvocab.workspace import Workspace

IGNORE = -1
BACKGROUND_NAMES = {"background", "_background_", "__background__"}
SEMANTIC_ONLY = {"index-masks", "ade20k-150", "ade20k-847"}


def thing_classes(reader: DatasetReader) -> set[int]:
    """Dataset class indices that are countable things (the rest is stuff, for PQ).

    Readers that know (COCO panoptic, Cityscapes) say so; semantic-only formats have no
    instances, so everything is stuff; otherwise every class but background is a thing.
    """
    known = getattr(reader, "thing_classes", None)
    if known is not None:
        return set(known)
    if reader.format in SEMANTIC_ONLY:
        return set()
    return {i for i, n in enumerate(reader.class_names) if n.lower() not in BACKGROUND_NAMES}


@dataclass
class Scorer:
    """Accumulates one dataset's metrics from segmentations made in a domain.

    ``counted``: the dataset classes evaluated (others are ignored in the ground truth and
    count as void when predicted) — the continual protocol evaluates only seen classes.
    """

    reader: DatasetReader
    counted: Collection[int] | None = None
    semantic: SemanticConfusion = field(init=False)
    panoptic: PanopticAccumulator = field(init=False)

    def __post_init__(self) -> None:
        names = self.reader.class_names
        self.index = {n: i for i, n in enumerate(names)}
        self.semantic = SemanticConfusion(len(names), ignore_index=IGNORE)
        things = thing_classes(self.reader)
        self.panoptic = PanopticAccumulator({i: i in things for i in range(len(names))})
        self.things = things

    def _gt(self, instances: Instances) -> tuple[npt.NDArray[np.int64], Instances]:
        keep = np.ones(len(instances), bool)
        ignore = instances.ignore.copy()
        if self.counted is not None:
            keep = np.isin(instances.class_ids, list(self.counted))
            for mask in instances.masks[~keep]:
                ignore |= mask
        kept = Instances(
            instances.masks[keep],
            instances.class_ids[keep],
            tuple(k for k, ok in zip(instances.keys, keep, strict=True) if ok),
            instances.crowd[keep],
            ignore,
        )
        return kept.semantic_map(ignore_index=IGNORE), kept

    def add(self, seg: Segmentation, instances: Instances) -> None:
        """Score one image's segmentation against its ground truth."""
        void = len(self.reader.class_names)  # counts as a wrong prediction
        lut = {cid: self.index.get(name, void) for cid, name in seg.names.items()}
        pred_of_segment = np.array(
            [void] + [lut.get(s.class_id, void) for s in seg.segments], np.int64
        )
        pred = pred_of_segment[seg.segment_map]
        gt_semantic, gt = self._gt(instances)
        self.semantic.update(pred, gt_semantic)
        self.panoptic.update(self._pred_panoptic(seg, pred_of_segment, void), self._gt_panoptic(gt))

    def _gt_panoptic(self, gt: Instances) -> PanopticMap:
        return PanopticMap.from_masks(gt.masks, gt.class_ids, crowd=gt.crowd, ignore=gt.ignore)

    def _pred_panoptic(
        self, seg: Segmentation, category: npt.NDArray[np.int64], void: int
    ) -> PanopticMap:
        """Each proposal of a thing class is an instance; a stuff class is one segment."""
        new_id = np.zeros(len(category), np.int64)
        segments: dict[int, Segment] = {}
        stuff_ids: dict[int, int] = {}
        for sid in range(1, len(category)):
            cat = int(category[sid])
            if cat == void:
                continue
            if cat not in self.things:
                if cat not in stuff_ids:
                    stuff_ids[cat] = len(segments) + 1
                    segments[stuff_ids[cat]] = Segment(cat)
                new_id[sid] = stuff_ids[cat]
            else:
                new_id[sid] = len(segments) + 1
                segments[int(new_id[sid])] = Segment(cat)
        ids = new_id[seg.segment_map]
        present = {int(i) for i in np.unique(ids)} - {0}
        return PanopticMap(ids, {i: s for i, s in segments.items() if i in present})


@dataclass(frozen=True)
class EvalReport:
    """Metrics of one domain (at one version) on one labelled dataset."""

    domain: str
    version: int
    dataset: dict[str, Any]
    params: dict[str, Any]
    class_names: list[str]
    semantic: SemanticResult
    panoptic: PanopticResult
    images: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "version": self.version,
            "dataset": self.dataset,
            "params": self.params,
            "images": self.images,
            "seconds": round(self.seconds, 3),
            "semantic": self.semantic.to_dict(self.class_names),
            "panoptic": self.panoptic.to_dict(),
        }


def evaluate(
    ws: Workspace,
    domain: str,
    reader: DatasetReader,
    version: int | None = None,
    params: SegmentParams | None = None,
    convention: Convention = "detectron2",
    progress: Progress | None = None,
    refs: list[SampleRef] | None = None,
) -> EvalReport:
    """Segment every image of ``reader`` in ``domain`` and score it (see `Scorer`)."""
    from knnvocab.engine.batch import ground_truth_lookup
    from knnvocab.engine.proposals import make_proposals
    from knnvocab.engine.segmenter import Segmenter

    params = params or SegmentParams()
    lookup = ground_truth_lookup(reader) if params.proposals == "gt" else None
    proposals = make_proposals(params.proposals, params.n_segments, params.compactness, lookup)
    segmenter = Segmenter(ws, domain, version, params, proposals)
    scorer = Scorer(reader)
    refs = refs if refs is not None else reader.samples()
    progress = progress or NoProgress()
    started = time.monotonic()
    progress.start(len(refs), 0)
    for ref in refs:
        sample = reader.load(ref)
        seg = segmenter.segment(sample.image, ref.files[0])
        scorer.add(seg, sample.instances)
        progress.advance(1, len(seg.segments))
    progress.finish()
    return EvalReport(
        domain=domain,
        version=segmenter.version,
        dataset={"format": reader.format, "root": str(reader.root), "options": reader.options()},
        params=segmenter.recorded_params() | {"convention": convention},
        class_names=list(reader.class_names),
        semantic=scorer.semantic.result(convention),
        panoptic=scorer.panoptic.result(),
        images=len(refs),
        seconds=time.monotonic() - started,
    )
