"""Geometry of the fleet report's chart: per benchmark, tuned/default ratios by hardware class.

For one benchmark, a row per hardware class; each host of the class is a dot at its
ratio (default median ÷ tuned median: right of the 1.0 line the tuning helps), coloured
by verify's verdict, with the class median as a tick. Plain numbers for
``templates/rollout-charts.html.j2``, which writes every label.
"""

from __future__ import annotations

import statistics
from typing import Any

from gotune.verify.charts import FLEET_MIN_AXIS, HEADROOM, VERDICT_COLOR, nice_max

# The chart is as wide as verify's fleet chart; a row per class, 22 px apart.
WIDTH, ROW_H, TOP, RIGHT = 760, 22, 40, 30
# Room on the left for the class label, at most this many characters of it.
LEFT, LABEL_CHARS = 330, 48
# Five divisions of a nice_max axis end (1, 2, 2.5, 5 x 10^k) fall on round numbers.
TICKS = 5
# Dots of hosts with the same ratio are spread this far apart vertically.
JITTER_PX = 3


def _px(value: float) -> float:
    return round(value, 1)


def distribution(hosts: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The chart of benchmark ``name`` over ``hosts`` (the ``--json`` document's hosts);
    None when no host has a ratio for it."""
    classes: dict[str, list[tuple[str, float, str]]] = {}
    for host, h in hosts.items():
        b = next((b for b in h.get("benchmarks") or [] if b["name"] == name), None)
        if b is None or not isinstance(b.get("ratio"), int | float):
            continue
        label = (h.get("hardware") or {}).get("label") or "unknown hardware"
        classes.setdefault(label, []).append((host, float(b["ratio"]), b.get("verdict") or ""))
    if not classes:
        return None
    vmax = max(FLEET_MIN_AXIS,
               nice_max(max(r for dots in classes.values() for _, r, _ in dots) * HEADROOM))
    span = WIDTH - LEFT - RIGHT

    def x(v: float) -> float:
        return _px(LEFT + span * v / vmax)

    rows = []
    for i, (label, dots) in enumerate(sorted(classes.items())):
        y = TOP + i * ROW_H + ROW_H / 2
        median = statistics.median(r for _, r, _ in dots)
        rows.append({
            "label": label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…",
            "full_label": label, "y": y, "text_y": y + 4, "n": len(dots), "median": median,
            "median_x": x(median), "tick_y1": y - 8, "tick_y2": y + 8,
            "dots": [{"host": host, "ratio": r, "x": x(r), "y": y + JITTER_PX * ((j % 3) - 1),
                      "color": VERDICT_COLOR.get(verdict, "#777")}
                     for j, (host, r, verdict) in enumerate(dots)],
        })  # fmt: skip
    bottom = TOP + len(rows) * ROW_H
    return {
        "name": name, "width": WIDTH, "height": bottom + 30, "left": LEFT, "rows": rows,
        "ticks": [{"x": x(vmax * i / TICKS), "value": vmax * i / TICKS}
                  for i in range(TICKS + 1)],
        "axis_y": bottom, "tick_label_y": bottom + 14,
        "one": {"x": x(1.0), "y1": TOP - 4, "y2": bottom, "label_y": TOP - 8},
    }  # fmt: skip


def benchmark_names(hosts: dict[str, Any]) -> list[str]:
    """Every benchmark some host ran, in the order they first appear."""
    names: list[str] = []
    for h in hosts.values():
        for b in h.get("benchmarks") or []:
            if b["name"] not in names:
                names.append(b["name"])
    return names
