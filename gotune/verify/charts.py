"""Geometry of the report's charts: plain numbers that templates/verify-charts.html.j2 draws.

Each function takes part of a ``gotune verify --json`` result and returns a
dict of coordinates (pixels, one decimal), the values they stand for and the
colours; the template turns them into inline SVG and writes every label.

- ``ab``: one host's benchmark, each run of every variant as a dot, the
  min-max range as a line, the median as a tick, the target as a dashed line;
- ``fleet``: per benchmark, one bar per host for the headline ratio (before ÷ tuned
  where the host has a baseline, else default ÷ tuned);
- ``trend``: one benchmark's tuned, before and default medians over a host's runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from gotune.agent.stats import FASTER, SAME, SLOWER

TUNED_COLOR = "#1f77b4"
DEFAULT_COLOR = "#ff7f0e"
BEFORE_COLOR = "#9467bd"
# Top to bottom in an A/B chart; "before" only where the host has a baseline.
VARIANT_COLOR = {"tuned": TUNED_COLOR, "before": BEFORE_COLOR, "default": DEFAULT_COLOR}
ALWAYS_SHOWN = ("tuned", "default")
VERDICT_COLOR = {FASTER: "#2ca02c", SAME: "#7f7f7f", SLOWER: "#d62728", "error": "#d62728"}
# The A/B chart's width in pixels: two side by side fit the page (max-width 1100px).
AB_WIDTH = 560
# Margins of the A/B chart: room for the variant names on the left, the title on top.
AB_LEFT, AB_RIGHT, AB_TOP, AB_ROW_H = 70, 20, 40, 34
# The fleet chart: a 14 px bar per host and a 12 px gap between benchmarks.
FLEET_WIDTH, FLEET_BAR_H, FLEET_GAP, FLEET_RIGHT, FLEET_TOP = 760, 14, 12, 60, 24
# Left margin of the fleet chart: benchmark names on one host, host names on several.
FLEET_LEFT_ONE_HOST, FLEET_LEFT_PAD, FLEET_CHAR_W = 190, 40, 7
# The fleet axis reaches at least 2.0: a 1.1x ratio is not drawn across the whole chart.
FLEET_MIN_AXIS = 2.0
# The trend chart: small, three to a row on the page.
TREND_WIDTH, TREND_HEIGHT, TREND_LEFT, TREND_RIGHT, TREND_TOP, TREND_BOTTOM = (
    360, 150, 56, 10, 22, 28)  # fmt: skip
# Head room above the largest value, so a dot or bar never touches the edge.
HEADROOM_AB, HEADROOM = 1.05, 1.1


def _px(value: float) -> float:
    """A coordinate as the SVG gets it: one decimal is finer than a pixel."""
    return round(value, 1)


def nice_max(value: float) -> float:
    """A round axis end at or above ``value``."""
    if value <= 0:
        return 1.0
    exp = 10 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    while exp > value:
        exp /= 10
    for step in (1, 2, 2.5, 5, 10):
        if step * exp >= value:
            return step * exp
    return 10 * exp


def _scale(start: float, length: float, vmax: float) -> Callable[[float], float]:
    """Pixels from ``start`` over ``length`` for values 0..vmax."""
    return lambda v: start + length * (v / vmax)


def ab(bench: dict[str, Any]) -> dict[str, Any]:
    """The chart of one benchmark result: a row per variant (tuned, before, default)."""
    shown = {k: c for k, c in VARIANT_COLOR.items() if k in ALWAYS_SHOWN or bench.get(k)}
    values: list[float] = []
    for key in shown:
        summary = bench.get(key) or {}
        values += [float(v) for v in summary.get("samples_s") or []]
        values.append(summary.get("max_s") or 0.0)
    target = bench.get("target_s")
    if target:
        values.append(float(target))
    vmax = nice_max(max(values) * HEADROOM_AB)
    x = _scale(AB_LEFT, AB_WIDTH - AB_LEFT - AB_RIGHT, vmax)
    axis_y = AB_TOP + len(shown) * AB_ROW_H
    rows = []
    for i, (key, color) in enumerate(shown.items()):
        y = AB_TOP + i * AB_ROW_H + AB_ROW_H / 2
        row: dict[str, Any] = {"key": key, "color": color, "y": y, "text_y": y + 4,
                               "summary": bench.get(key)}  # fmt: skip
        if row["summary"]:
            s = row["summary"]
            median_x = x(s["median_s"])
            row |= {
                "min_x": _px(x(s["min_s"])), "max_x": _px(x(s["max_s"])),
                "dots": [_px(x(float(v))) for v in s.get("samples_s") or []],
                "median_x": _px(median_x), "tick_y1": y - 10, "tick_y2": y + 10,
                "label_x": _px(min(median_x + 6, AB_WIDTH - 60)), "label_y": y - 6,
            }  # fmt: skip
        rows.append(row)
    return {
        "width": AB_WIDTH, "height": AB_TOP + len(shown) * AB_ROW_H + 30, "left": AB_LEFT,
        "top": AB_TOP, "axis_y": axis_y, "tick_label_y": axis_y + 14,
        "ticks": [{"x": _px(x(vmax * i / 5)), "value": vmax * i / 5} for i in range(6)],
        "rows": rows,
        "target": {"x": _px(x(float(target))), "label_x": _px(x(float(target)) - 4),
                   "y1": AB_TOP - 4, "label_y": AB_TOP - 6, "value": float(target)}
        if target else None,
    }  # fmt: skip


def headline_of(bench: dict[str, Any]) -> tuple[float | None, str]:
    """(ratio, verdict) a fleet bar shows: before ÷ tuned where the host has a baseline,
    else default ÷ tuned."""
    if bench.get("headline_ratio") is not None:
        return float(bench["headline_ratio"]), str(
            (bench.get("verdicts") or {}).get("before") or bench.get("verdict"))
    r = bench.get("ratio")
    return (float(r) if r is not None else None), str(bench.get("verdict"))


def fleet(hosts: dict[str, Any]) -> dict[str, Any] | None:
    """Bars of the headline ratio (``headline_of``), per benchmark (groups) and host; None
    without any."""
    names: list[str] = []
    for host in hosts.values():
        for b in host.get("benchmarks") or []:
            if b["name"] not in names:
                names.append(b["name"])
    if not names:
        return None
    many = len(hosts) > 1
    # one host: the benchmark names label the bars; several: a title row per benchmark
    left = FLEET_LEFT_PAD + FLEET_CHAR_W * max(len(h) for h in hosts) if many else (
        FLEET_LEFT_ONE_HOST)
    rows = len(names) * (len(hosts) + (1 if many else 0))
    ratios = [headline_of(b)[0] or 0 for h in hosts.values() for b in h.get("benchmarks") or []]
    vmax = max(FLEET_MIN_AXIS, nice_max(max(ratios, default=1.0) * HEADROOM))
    x = _scale(left, FLEET_WIDTH - left - FLEET_RIGHT, vmax)
    groups = []
    y = FLEET_TOP
    for name in names:
        group: dict[str, Any] = {"name": name, "text_y": y + FLEET_BAR_H - 3, "bars": []}
        if many:
            y += FLEET_BAR_H
        for host_name, host in hosts.items():
            bench = next((b for b in host.get("benchmarks") or [] if b["name"] == name), None)
            bar: dict[str, Any] = {"host": host_name, "y": y + 1, "text_y": y + FLEET_BAR_H - 3,
                                   "ratio": None}  # fmt: skip
            r, shown_verdict = headline_of(bench) if bench else (None, "")
            if r is not None:
                bar |= {"ratio": r, "width": _px(max(x(r) - left, 1)), "label_x": _px(x(r) + 4),
                        "color": VERDICT_COLOR.get(shown_verdict, "#777")}  # fmt: skip
            group["bars"].append(bar)
            y += FLEET_BAR_H
        groups.append(group)
        y += FLEET_GAP
    height = FLEET_TOP + rows * FLEET_BAR_H + len(names) * FLEET_GAP + 30
    return {
        "width": FLEET_WIDTH, "height": height,
        "left": left, "host_x": left - 6, "none_x": left + 4, "many": many,
        "bar_h": FLEET_BAR_H - 2, "groups": groups,
        "one": {"x": _px(x(1.0)), "y1": FLEET_TOP - 4, "y2": y, "label_y": y + 14},
    }  # fmt: skip


def trend(points: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """Tuned, before and default medians of benchmark ``name`` over the history points;
    None before two runs."""
    series: dict[str, list[tuple[int, float]]] = {key: [] for key in VARIANT_COLOR}
    for i, point in enumerate(points):
        b = next((b for b in point.get("benchmarks") or [] if b.get("name") == name), None)
        if not b:
            continue
        for key in series:
            v = b.get(f"{key}_s")
            if isinstance(v, (int, float)):
                series[key].append((i, float(v)))
    if len(series["tuned"]) < 2:
        return None
    vmax = nice_max(max(v for s in series.values() for _, v in s) * HEADROOM)
    plot_w = TREND_WIDTH - TREND_LEFT - TREND_RIGHT
    plot_h = TREND_HEIGHT - TREND_TOP - TREND_BOTTOM
    x = _scale(TREND_LEFT, plot_w, max(len(points) - 1, 1))

    def y(v: float) -> float:
        return TREND_TOP + plot_h * (1 - v / vmax)

    times = []
    for t, anchor, xpos in ((points[0].get("time"), "start", TREND_LEFT),
                            (points[-1].get("time"), "end", TREND_WIDTH - TREND_RIGHT)):
        if isinstance(t, (int, float)):
            when = dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%m-%d %H:%M")
            times.append({"x": xpos, "anchor": anchor, "text": when})
    return {
        "width": TREND_WIDTH, "height": TREND_HEIGHT, "left": TREND_LEFT,
        "label_x": TREND_LEFT - 4, "right": TREND_WIDTH - TREND_RIGHT, "time_y": TREND_HEIGHT - 8,
        "legend": [{"name": key, "color": VARIANT_COLOR[key]} for key, pts in series.items()
                   if pts],
        "grid": [{"y": _px(y(vmax * i / 2)), "text_y": _px(y(vmax * i / 2) + 4),
                  "value": vmax * i / 2} for i in range(3)],
        "series": [{"color": VARIANT_COLOR[key],
                    "points": [{"x": _px(x(i)), "y": _px(y(v))} for i, v in pts]}
                   for key, pts in series.items() if pts],
        "times": times,
    }  # fmt: skip
