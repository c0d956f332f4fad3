"""SVG charts: well-formed, escaped, scaled to a round axis."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from queueprio.observability.charts import (
    axis_scale,
    bar_chart,
    format_number,
    grouped_bar_chart,
    line_chart,
    lines_chart,
)

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314  (our own output)


def bars(svg: str) -> list[ET.Element]:
    return [el for el in parse(svg).iter(f"{SVG}rect") if el.get("class") == "qp-bar"]


@pytest.mark.parametrize(
    ("value", "top", "ticks"),
    [
        (0, 1.0, 5),
        (-3, 1.0, 5),
        (0.3, 0.3, 3),
        (1, 1.0, 5),
        (4, 4.0, 4),
        (7, 8.0, 4),
        (10, 10.0, 5),
        (22, 25.0, 5),
        (286, 300.0, 3),
        (4999, 5000.0, 5),
    ],
)
def test_axis_scale__round_top_in_round_steps(value: float, top: float, ticks: int) -> None:
    assert axis_scale(value) == (pytest.approx(top), ticks)


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [(None, "", "–"), (0, "", "0"), (950, "", "950"), (1234, "", "1.23k"), (0.25, " s", "0.25 s"), (3.5e6, "", "3.5M")],
)
def test_format_number__table(value: float | None, unit: str, text: str) -> None:
    assert format_number(value, unit) == text


def test_bar_chart__one_bar_per_value_scaled_to_the_axis() -> None:
    svg = bar_chart([("1", 5), ("2", 10), ("3", 0)], title="Depth")
    heights = [float(b.get("height")) for b in bars(svg)]
    assert len(heights) == 3
    assert heights[1] == pytest.approx(2 * heights[0])
    assert heights[2] == 0
    assert parse(svg).find(f"{SVG}title").text == "Depth"


def test_bar_chart__escapes_labels_and_title() -> None:
    svg = bar_chart([("<script>alert(1)</script>", 1)], title='a "quoted" & <b>bold</b> title')
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    root = parse(svg)  # still well-formed XML
    assert root.get("aria-label") == 'a "quoted" & <b>bold</b> title'


def test_bar_chart__without_values_says_so() -> None:
    svg = bar_chart([], title="Nothing")
    assert "no data" in svg
    assert bars(svg) == []


def test_grouped_bar_chart__none_leaves_a_gap_and_series_get_a_legend() -> None:
    svg = grouped_bar_chart(["1", "2"], [("p50", [1.0, None]), ("p95", [3.0, 4.0])], title="Wait", unit=" s")
    assert len(bars(svg)) == 3
    texts = [el.text for el in parse(svg).iter(f"{SVG}text")]
    assert "p50" in texts
    assert "p95" in texts
    assert "4 s" in texts  # the axis top for a largest value of 4, with the unit


def test_line_chart__one_point_per_value() -> None:
    svg = line_chart([("12:00", 1), ("12:01", 4), ("12:02", 2)], title="Throughput")
    line = next(parse(svg).iter(f"{SVG}polyline"))
    assert len(line.get("points").split()) == 3


@pytest.mark.parametrize(
    ("value", "top", "ticks"),
    [(0, 1.0, 1), (1, 1.0, 1), (2, 2.0, 2), (3, 3.0, 3), (7, 8.0, 4), (12, 15.0, 3), (22, 25.0, 5), (286, 300.0, 3)],
)
def test_axis_scale__counts_get_whole_number_ticks(value: float, top: float, ticks: int) -> None:
    got_top, got_ticks = axis_scale(value, integer=True)
    assert (got_top, got_ticks) == (pytest.approx(top), ticks)
    step = got_top / got_ticks
    assert step == int(step)  # every tick a whole number
    # The control: without integer=True a count of 2 is drawn in steps of 0.5
    assert axis_scale(2) == (pytest.approx(2.0), 4)


def test_bar_chart__integer_axis_labels_are_whole_numbers() -> None:
    svg = bar_chart([("1", 2), ("2", 1)], title="Depth", integer=True)
    labels = [el.text for el in parse(svg).iter(f"{SVG}text") if el.get("text-anchor") == "end"]
    assert labels == ["0", "1", "2"]


def test_lines_chart__one_line_per_series_with_a_legend_and_gaps() -> None:
    svg = lines_chart(
        ["12:00", "12:01", "12:02"], [("urgent", [0, 2, 1]), ("bulk", [5, None, 3])], title="Depth", integer=True
    )
    lines = [el.get("points").split() for el in parse(svg).iter(f"{SVG}polyline")]
    assert [len(points) for points in lines] == [3, 1, 1]  # the missing sample breaks the bulk line
    texts = [el.text for el in parse(svg).iter(f"{SVG}text")]
    assert "urgent" in texts
    assert "bulk" in texts
