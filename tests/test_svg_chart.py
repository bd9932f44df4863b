"""clients/svg_chart.py: the report's inline SVG charts are well-formed, self-contained, labelled and escaped."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from clients.svg_chart import bar_chart, compact, latency_chart, nice_max

NS = "{http://www.w3.org/2000/svg}"
CATS = ["4k 随机读 / 4k random read", "4k 随机写 / 4k random write", "1M 顺序读 / 1M sequential read"]


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return root


def self_contained(svg: str) -> None:
    assert not re.search(r"href|url\(|@import|<script|<image|<foreignObject|\bid=", svg)


def test_bar_chart_is_well_formed_titled_scalable_and_labels_every_value():
    svg = bar_chart("IOPS（每配置）/ IOPS per profile", CATS, {"IOPS": [61234.5, 30500.0, 2100.0]}, "IOPS",
                    thresholds=[15000, 7500, None])
    root = parse(svg)
    self_contained(svg)
    assert root[0].tag == f"{NS}title" and root[0].text == "IOPS（每配置）/ IOPS per profile"
    assert root.get("viewBox") == "0 0 720 320" and "max-width:100%" in root.get("style")
    assert root.get("role") == "img" and root.get("aria-label")
    texts = ["".join(t.itertext()) for t in root.iter(f"{NS}text")]
    assert {"61.2k", "30.5k", "2,100"} <= set(texts)
    assert any(t.startswith("4k 随机读") and t.endswith("4k random read") for t in texts)   # two tspans
    dashed = [line for line in root.iter(f"{NS}line") if line.get("stroke-dasharray")]
    assert len(dashed) == 3                     # two thresholds + the legend's sample
    assert len(list(root.iter(f"{NS}rect"))) == 1 + 3 + 1     # background, bars, legend


def test_labels_are_escaped_and_control_characters_dropped():
    evil = 'a<b>&"c\'</title><script>x</script>\x01'
    svg = bar_chart(evil, [evil], {evil: [1.0]}, evil, thresholds=[0.5])
    root = parse(svg)
    self_contained(svg)
    assert root[0].text == 'a<b>&"c\'</title><script>x</script>'
    assert "<script>" not in svg and "\x01" not in svg


def test_missing_values_and_empty_charts():
    root = parse(bar_chart("MB/s", CATS, {"MB/s": [None, float("nan"), 12.5]}, "MB/s"))
    assert len([r for r in root.iter(f"{NS}rect")]) == 1 + 1 + 1
    assert "-" in ["".join(t.itertext()) for t in root.iter(f"{NS}text")]
    empty = parse(bar_chart("IOPS", [], {}, "IOPS"))
    assert "no data" in "".join(empty.itertext())
    with pytest.raises(ValueError):
        bar_chart("x", CATS, {"a": [1.0]}, "u")
    with pytest.raises(ValueError):
        bar_chart("x", CATS, {"a": [1.0, 2.0, 3.0]}, "u", thresholds=[1.0])


def test_latency_chart_groups_mean_p99_p999_with_ceilings():
    svg = latency_chart("时延 / latency", CATS[:2], [0.52, 1.1], [1.8, 3.9], [3.1, 6.6], ceilings=[10.0, None])
    root = parse(svg)
    self_contained(svg)
    texts = ["".join(t.itertext()) for t in root.iter(f"{NS}text")]
    assert {"平均 / mean", "p99", "p99.9", "上限 / ceiling", "0.52", "3.9", "ms"} <= set(texts)
    assert len([r for r in root.iter(f"{NS}rect") if r.find(f"{NS}title") is not None]) == 6


def test_scale_helpers():
    assert [nice_max(v) for v in (0, 0.7, 1, 3, 21, 240, 61234)] == [1, 1, 1, 5, 25, 250, 100000]
    assert [compact(v) for v in (None, 0.523, 12.34, 2100, 61234.5, 1_234_567)] == \
        ["-", "0.523", "12.3", "2,100", "61.2k", "1.23M"]


def test_long_labels_wrap_and_the_chart_grows():
    cats = ["4k 随机读时延（队列深度 1）/ 4k random read latency (queue depth 1)"] * 6
    root = parse(bar_chart("t", cats, {"ms": [1.0] * 6}, "ms"))
    assert int(root.get("viewBox").split()[3]) > 320
    label = next(t for t in root.iter(f"{NS}text") if len(list(t)) > 2)
    assert "".join(label.itertext()).replace(" ", "") == cats[0].replace(" / ", "").replace(" ", "")
