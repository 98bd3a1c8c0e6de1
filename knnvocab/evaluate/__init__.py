"""Evaluation metrics: semantic mIoU / accuracy, panoptic PQ / SQ / RQ, and a chart.

numpy only; matplotlib is imported by `iou_bar_chart` alone. Typical use::

    sem = SemanticConfusion(num_classes=21, ignore_index=255)
    pan = PanopticAccumulator({0: False, 15: True})  # category id -> isthing
    for ...:  # one image at a time
        sem.update(pred_labels, gt_labels)  # (H, W) integer maps
        pan.update(PanopticMap(pred_ids, pred_segs), PanopticMap(gt_ids, gt_segs))
    sem.result().miou, sem.result("mmseg").miou, pan.result().all.pq
"""

from knnvocab.evaluate.chart import iou_bar_chart
from knnvocab.evaluate.metrics import (
    CONVENTIONS,
    Convention,
    SemanticConfusion,
    SemanticResult,
    semantic_scores,
)
from knnvocab.evaluate.panoptic import (
    ClassPQ,
    PanopticAccumulator,
    PanopticMap,
    PanopticResult,
    PQScore,
    Segment,
)

__all__ = [
    "CONVENTIONS",
    "ClassPQ",
    "Convention",
    "PQScore",
    "PanopticAccumulator",
    "PanopticMap",
    "PanopticResult",
    "Segment",
    "SemanticConfusion",
    "SemanticResult",
    "iou_bar_chart",
    "semantic_scores",
]
