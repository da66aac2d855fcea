"""The console's server-drawn SVG bar charts (privacy_hub/console/charts.py)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from privacy_hub.console.charts import Series, bar_chart, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"


def bars(svg: str) -> list[dict[str, str]]:
    root = ET.fromstring(svg)  # noqa: S314  our own markup, not untrusted input
    return [r.attrib for r in root.iter(f"{SVG}rect") if "bar" in r.attrib.get("class", "")
            and r.find(f"{SVG}title") is not None]


def chart(categories: list[str], *series: Series, **kw: object) -> str:
    return str(bar_chart(categories, list(series), chart_id="t", summary="A summary",
                         empty_text="No data in this period", **kw))  # type: ignore[arg-type]


def test_bar_heights_are_proportional_to_the_values() -> None:
    svg = chart(["a", "b", "c"], Series("Requests", [2, 4, 8]))
    heights = [float(b["height"]) for b in bars(svg)]
    assert len(heights) == 3
    assert heights[1] == heights[0] * 2 and heights[2] == heights[0] * 4
    # bars stand on one baseline
    bottoms = {round(float(b["y"]) + float(b["height"]), 1) for b in bars(svg)}
    assert len(bottoms) == 1


def test_stacked_series_sit_on_each_other() -> None:
    svg = chart(["w1"], Series("Grants", [3]), Series("Refusals", [1]))
    grant, refusal = bars(svg)
    assert float(grant["height"]) == 3 * float(refusal["height"])
    assert abs(float(refusal["y"]) + float(refusal["height"]) - float(grant["y"])) < 0.11
    assert refusal["fill"] == "url(#t-p1)"  # a pattern, so colour is not the only cue


def test_grouped_series_stand_side_by_side() -> None:
    svg = chart(["w1"], Series("On time", [2]), Series("Late", [2]), stacked=False)
    a, b = bars(svg)
    assert a["y"] == b["y"] and float(b["x"]) > float(a["x"])


def test_text_is_escaped() -> None:
    svg = chart(["<script>"], Series('"&<b>', [1]), Series("x", [1]))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "&#34;&amp;&lt;b&gt;" in svg
    ET.fromstring(svg)  # noqa: S314  our own markup: it is well-formed


def test_the_chart_is_an_image_with_its_summary_as_name() -> None:
    svg = chart(["a"], Series("x", [1]))
    root = ET.fromstring(svg)  # noqa: S314  our own markup
    assert root.attrib["role"] == "img"
    assert root.attrib["aria-labelledby"] == "t-title"
    assert root.find(f"{SVG}title").text == "A summary"  # type: ignore[union-attr]


def test_an_empty_series_draws_the_no_data_state() -> None:
    for svg in (chart(["a", "b"], Series("x", [0, 0])), chart([], Series("x", [])),
                chart(["a"])):
        assert "No data in this period" in svg
        assert not bars(svg)


def test_the_same_numbers_give_the_same_markup() -> None:
    args = (["a", "b"], Series("x", [1, 5]), Series("y", [2, 0]))
    assert chart(*args) == chart(*args)  # type: ignore[arg-type]


def test_single_bars_carry_their_value_and_legend_only_for_several_series() -> None:
    single = chart(["a", "b"], Series("Requests", [7, 3]))
    assert re.search(r'class="value"[^>]*>7<', single) and 'class="legend"' not in single
    several = chart(["a"], Series("Grants", [1]), Series("Refusals", [2]))
    assert several.count('class="legend"') == 2


def test_ticks_are_round_and_cover_the_maximum() -> None:
    assert nice_ticks(7) == [0, 2, 4, 6, 8]
    assert nice_ticks(100) == [0, 50, 100]
    assert nice_ticks(1) == [0, 1]
    assert nice_ticks(0) == [0, 1]
    assert all(t == int(t) for t in nice_ticks(3))
