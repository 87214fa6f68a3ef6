"""The SVG chart module: valid SVG, scaling, gaps, escaping, empty series."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from tokenyard.server.ui.charts import Frame, Point, chart, nice_ceiling

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # raises on anything that is not well-formed XML


@pytest.mark.parametrize(
    ("value", "top"),
    [
        (0, 1.0),
        (-3, 1.0),
        (0.7, 1.0),
        (1, 1.0),
        (1.2, 2.0),
        (2.2, 2.5),
        (3, 5.0),
        (7, 10.0),
        (1234, 2000.0),
        (0.031, 0.05),
    ],
)
def test_nice_ceiling(value: float, top: float) -> None:
    assert nice_ceiling(value) == pytest.approx(top)


def test_empty_series_says_no_data() -> None:
    for points in ([], [Point("a", None), Point("b", None)]):
        root = parse(chart(points, title="Spend"))
        assert root.tag == f"{SVG}svg"
        assert "no data" in "".join(root.itertext())
        assert root.find(f"{SVG}rect") is None


def test_bars_scale_to_the_largest_value() -> None:
    frame = Frame()
    root = parse(chart([Point("a", 5), Point("b", 10), Point("c", 0)], title="t", frame=frame))
    bars = root.findall(f"{SVG}rect")
    assert len(bars) == 3
    heights = [float(b.get("height", "0")) for b in bars]
    assert heights[1] == pytest.approx(frame.plot_h, abs=0.1)  # 10 is the top of the axis
    assert heights[0] == pytest.approx(frame.plot_h / 2, abs=0.1)
    assert heights[2] == pytest.approx(0, abs=0.1)
    for bar in bars:  # inside the plot area
        assert frame.left <= float(bar.get("x", "0")) <= frame.width - frame.right


def test_axis_labels_and_tooltips_use_the_formatter() -> None:
    svg = chart(
        [Point("13:00", 2_500_000_000, "2.500000")],
        title="Spend",
        fmt=lambda v: f"${v / 1e9:g}",
    )
    root = parse(svg)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "$0" in texts and "$2.5" in texts  # 2.5 is a round axis top already
    tips = [t.text for t in root.iter(f"{SVG}title")]
    assert "13:00: 2.500000" in tips  # the caller's exact text, not a float


def test_line_breaks_at_gaps() -> None:
    points = [Point("a", 1), Point("b", 2), Point("c", None), Point("d", 3), Point("e", 1)]
    root = parse(chart(points, title="p95", kind="line"))
    lines = root.findall(f"{SVG}polyline")
    assert [len(line.get("points", "").split()) for line in lines] == [2, 2]
    assert len(root.findall(f"{SVG}circle")) == 4


def test_text_is_escaped() -> None:
    svg = chart([Point("<script>&", 1)], title='"><b>')
    parse(svg)
    assert "<script>" not in svg and "<b>" not in svg


def test_many_points_stay_inside_the_frame() -> None:
    frame = Frame()
    svg = chart([Point(str(i), float(i % 7)) for i in range(30)], title="t", kind="line")
    xs = [float(x) for x in re.findall(r'cx="([0-9.]+)"', svg)]
    assert len(xs) == 30 and min(xs) > frame.left and max(xs) < frame.width - frame.right
