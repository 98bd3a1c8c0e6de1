"""A per-class IoU bar chart (PNG), drawn with matplotlib's Agg canvas."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from knnvocab.evaluate._checks import fail
from knnvocab.evaluate.metrics import FloatVector, SemanticResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MAX_LABELLED_BARS = 50  # beyond this, value labels on the bars only overlap


def iou_bar_chart(
    result: SemanticResult,
    class_names: Sequence[str],
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Write a bar chart of ``result.per_class_iou`` (in %) to ``path`` (PNG) and return it.

    Classes whose IoU is NaN (excluded by the convention) get no bar; the chart says how
    many classes were counted and draws the mIoU as a dashed line. matplotlib is imported
    here, and drawn through its Agg canvas without pyplot, so no global backend changes.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if len(class_names) != result.num_classes:
        raise fail("class_names", f"{result.num_classes} names", len(class_names))
    counted = np.flatnonzero(~np.isnan(result.per_class_iou))
    names = [str(class_names[int(i)]) for i in counted]
    values = 100.0 * result.per_class_iou[counted]
    width = min(max(6.0, 0.28 * len(names) + 2.0), 60.0)
    fig = Figure(figsize=(width, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    _draw_bars(ax, names, values, 100.0 * result.miou)
    summary = f"mIoU {100.0 * result.miou:.1f}% ({result.convention}, "
    summary += f"{len(names)} of {result.num_classes} classes counted)"
    ax.set_title(f"{title}\n{summary}" if title else summary)
    out = Path(path)
    fig.savefig(out, format="png", dpi=100)
    return out


def _draw_bars(ax: Axes, names: list[str], values: FloatVector, miou: float) -> None:
    """Bars of ``values`` (%) labelled ``names``, and a dashed mIoU line."""
    bars = ax.bar(range(len(names)), values, color="#4c72b0")
    if len(names) <= MAX_LABELLED_BARS:
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("IoU (%)")
    if names:
        ax.axhline(miou, color="#c44e52", linestyle="--", label="mIoU")
        ax.legend(loc="upper right")
    else:
        ax.text(0.5, 0.5, "no class counted", ha="center", va="center", transform=ax.transAxes)
