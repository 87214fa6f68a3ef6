"""Time series as inline SVG, drawn on the server.

The dashboard must work offline and without JavaScript, so charts are plain SVG strings put
into the page. Values are only turned into pixel positions here; every number a person
reads (axis labels, tooltips) comes from the caller's ``fmt``, so money keeps its exact
decimal string. Every piece of text is escaped: series labels can come from the database.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape
from typing import Literal

from tokenyard.immutable import immutable

Kind = Literal["bar", "line"]


@immutable
class Point:
    label: str  # the bucket, e.g. "2026-05-01 13:00" (shown in tooltips and on the x axis)
    value: float | None  # None: nothing measured in that bucket (a gap, not a zero)
    text: str | None = None  # how the value reads in a tooltip; default: fmt(value)


@immutable
class Frame:
    """The drawing area inside the SVG, leaving room for the axis labels."""

    width: int = 560
    height: int = 170
    left: int = 64
    right: int = 10
    top: int = 10
    bottom: int = 24

    @property
    def plot_w(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> int:
        return self.height - self.top - self.bottom


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10ⁿ at or above ``value`` (axis tops read well)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exponent = math.floor(math.log10(value))
    base = 10.0**exponent
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * base * (1 + 1e-12):
            return step * base
    return 10.0 * base  # pragma: no cover — the loop always returns


def chart(
    points: Sequence[Point],
    *,
    title: str,
    kind: Kind = "bar",
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    frame: Frame | None = None,
) -> str:
    """An SVG chart of ``points`` in order; "no data" when no point has a value."""
    frame = frame or Frame()
    measured = [p.value for p in points if p.value is not None]
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {frame.width} {frame.height}" width="{frame.width}" '
        f'height="{frame.height}" aria-label="{escape(title)}"><title>{escape(title)}</title>'
    )
    if not measured:
        return (
            f'{head}<text x="{frame.width // 2}" y="{frame.height // 2}" '
            f'text-anchor="middle" class="nodata">no data</text></svg>'
        )
    top = nice_ceiling(max(measured))
    parts = [head, _axes(frame, top, fmt), _x_labels(points, frame)]
    parts.append(
        _bars(points, frame, top, fmt) if kind == "bar" else _line(points, frame, top, fmt)
    )
    parts.append("</svg>")
    return "".join(parts)


def _y(value: float, frame: Frame, top: float) -> float:
    return frame.top + frame.plot_h * (1 - min(max(value, 0.0), top) / top)


def _axes(frame: Frame, top: float, fmt: Callable[[float], str]) -> str:
    out = []
    for fraction in (0.0, 0.5, 1.0):
        y = _y(top * fraction, frame, top)
        out.append(
            f'<line class="grid" x1="{frame.left}" x2="{frame.width - frame.right}" '
            f'y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{frame.left - 4}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(fmt(top * fraction))}</text>"
        )
    return "".join(out)


def _x_labels(points: Sequence[Point], frame: Frame) -> str:
    if not points:
        return ""
    step = frame.plot_w / len(points)
    picks = sorted({0, len(points) // 2, len(points) - 1})
    y = frame.height - 6
    return "".join(
        f'<text class="axis" x="{frame.left + step * (i + 0.5):.1f}" y="{y}" '
        f'text-anchor="middle">{escape(points[i].label)}</text>'
        for i in picks
    )


def _tip(point: Point, fmt: Callable[[float], str]) -> str:
    value = point.text if point.text is not None else fmt(point.value or 0.0)
    return f"<title>{escape(point.label)}: {escape(value)}</title>"


def _bars(points: Sequence[Point], frame: Frame, top: float, fmt: Callable[[float], str]) -> str:
    step = frame.plot_w / len(points)
    width = max(step * 0.8, 1.0)
    base = frame.top + frame.plot_h
    out = []
    for i, point in enumerate(points):
        if point.value is None:
            continue
        y = _y(point.value, frame, top)
        x = frame.left + step * i + (step - width) / 2
        out.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
            f'height="{base - y:.1f}">{_tip(point, fmt)}</rect>'
        )
    return "".join(out)


def _line(points: Sequence[Point], frame: Frame, top: float, fmt: Callable[[float], str]) -> str:
    """Polylines broken at gaps, and a dot per measured point (carrying its tooltip)."""
    step = frame.plot_w / len(points)
    runs: list[list[str]] = [[]]
    dots = []
    for i, point in enumerate(points):
        if point.value is None:
            if runs[-1]:
                runs.append([])
            continue
        x, y = frame.left + step * (i + 0.5), _y(point.value, frame, top)
        runs[-1].append(f"{x:.1f},{y:.1f}")
        dots.append(
            f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="2.5">{_tip(point, fmt)}</circle>'
        )
    lines = "".join(
        f'<polyline class="line" fill="none" points="{" ".join(run)}"/>' for run in runs if run
    )
    return lines + "".join(dots)
