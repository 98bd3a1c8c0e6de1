"""The overview's chart: instances per class across versions, as inline SVG (drawn on
the server; no script, no library)."""

from __future__ import annotations

from dataclasses import dataclass

from knnvocab.engine.output import colour

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 12, 32


@dataclass(frozen=True)
class Line:
    """One class's polyline, its colour (CSS hex) and the class name for the legend."""

    name: str
    colour: str
    points: str
    dots: list[tuple[float, float]]  # markers, when few enough versions to mark each


@dataclass(frozen=True)
class Chart:
    """What ``chart.html`` draws: lines, axis ticks ``(position, text)`` and the size."""

    lines: list[Line]
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM


def _hex(class_id: int) -> str:
    r, g, b = colour(class_id)
    return f"#{r:02x}{g:02x}{b:02x}"


def build(
    versions: list[int], series: dict[str, list[int]], class_ids: dict[str, int]
) -> Chart | None:
    """The chart of ``series`` (class name -> instances at each of ``versions``); None
    when there is nothing to draw."""
    if not versions or not series:
        return None
    top = max((max(v) for v in series.values()), default=0) or 1
    lo, hi = versions[0], versions[-1]
    span = (hi - lo) or 1
    plot_w, plot_h = WIDTH - RIGHT - LEFT, HEIGHT - BOTTOM - TOP

    def x(number: int) -> float:
        return LEFT + (number - lo) / span * plot_w if hi > lo else LEFT + plot_w / 2

    def y(value: int) -> float:
        return TOP + plot_h - value / top * plot_h

    lines = []
    for name, values in series.items():
        xy = [(round(x(n), 1), round(y(v), 1)) for n, v in zip(versions, values, strict=True)]
        points = " ".join(f"{a},{b}" for a, b in xy)
        lines.append(Line(name, _hex(class_ids.get(name, 0)), points, xy if len(xy) <= 20 else []))
    marked = versions if len(versions) <= 12 else [lo, versions[len(versions) // 2], hi]
    x_ticks = [(x(n), f"v{n}") for n in marked]  # published versions only
    y_ticks = [(y(v), str(v)) for v in sorted({0, top // 2, top})]
    return Chart(lines, x_ticks, y_ticks)
