"""The HTML report: one self-contained page for a whole fleet.

No external scripts, styles, fonts or images: the CSS is inline and every
chart is an inline SVG drawn here, so the page opens offline and can be mailed
as one file. Every string from a host passes through ``html.escape``.

Charts:

- fleet overview: per benchmark, one bar per host for the ratio default/tuned,
  with the 1.0 line (above it the tuned setup is faster);
- per host and benchmark: each run of both variants as a dot, the min-max
  range as a line, the median as a tick, and the target as a dashed line;
- per host: the trend of the tuned and default medians over earlier runs.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import statistics
from pathlib import Path
from typing import Any

from gotune.agent.stats import FASTER, MIN_RUNS_FOR_VERDICT, NOISE_FRACTION, SAME, SLOWER

REPORT_NAME = "gotune-verify.html"
TUNED_COLOR = "#1f77b4"
DEFAULT_COLOR = "#ff7f0e"
VERDICT_COLOR = {FASTER: "#2ca02c", SAME: "#7f7f7f", SLOWER: "#d62728", "error": "#d62728"}
CHART_W = 560

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;
max-width:1100px}
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ccc;padding-bottom:4px}
h3{font-size:1.05em;margin:1.2em 0 .3em}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:3px 8px;border-bottom:1px solid #eee;
text-align:left;vertical-align:top;font-size:.9em}th{background:#f5f5f5}
.pass{color:#fff;background:#2ca02c;padding:1px 8px;border-radius:3px}
.fail{color:#fff;background:#d62728;padding:1px 8px;border-radius:3px}
.ok{color:#2ca02c}.bad{color:#d62728;font-weight:bold}.muted{color:#777}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{border:1px solid #eee;padding:6px}
svg text{font-family:system-ui,sans-serif;font-size:11px}
code{background:#f5f5f5;padding:0 3px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt_s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _nice_max(value: float) -> float:
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


def ab_chart(bench: dict[str, Any]) -> str:
    """Dots per run, min-max line and median tick for tuned and default, target dashed."""
    samples = {k: list((bench.get(k) or {}).get("samples_s") or []) for k in ("tuned", "default")}
    left, right, row_h, top = 70, 20, 34, 40
    width = CHART_W
    height = top + 2 * row_h + 30
    values = [v for vs in samples.values() for v in vs]
    for key in ("tuned", "default"):
        s = bench.get(key) or {}
        values += [s.get("max_s") or 0.0]
    if bench.get("target_s"):
        values.append(float(bench["target_s"]))
    vmax = _nice_max(max(values) * 1.05 if values else 1.0)

    def x(v: float) -> float:
        return left + (width - left - right) * (v / vmax)

    parts = [f'<svg width="{width}" height="{height}" '
             f'role="img" aria-label="{_e(bench["name"])}">']
    ratio = bench.get("ratio")
    title = f'{bench["name"]} — ratio {ratio:.2f}× — {bench["verdict"]}' if ratio else (
        f'{bench["name"]} — {bench["verdict"]}')
    color = VERDICT_COLOR.get(bench["verdict"], "#222")
    parts.append(f'<text x="4" y="14" font-weight="bold" fill="{color}">{_e(title)}</text>')
    axis_y = top + 2 * row_h
    for i in range(6):
        v = vmax * i / 5
        parts.append(f'<line x1="{x(v):.1f}" y1="{top}" x2="{x(v):.1f}" y2="{axis_y}" '
                     'stroke="#eee"/>')
        parts.append(f'<text x="{x(v):.1f}" y="{axis_y + 14}" text-anchor="middle" '
                     f'fill="#555">{_e(_fmt_s(v))}</text>')
    for row, (key, color_v) in enumerate((("tuned", TUNED_COLOR), ("default", DEFAULT_COLOR))):
        cy = top + row * row_h + row_h / 2
        parts.append(f'<text x="4" y="{cy + 4:.1f}" fill="{color_v}">{key}</text>')
        s = bench.get(key)
        if not s:
            parts.append(f'<text x="{left}" y="{cy + 4:.1f}" fill="#d62728">no result</text>')
            continue
        parts.append(f'<line x1="{x(s["min_s"]):.1f}" y1="{cy:.1f}" x2="{x(s["max_s"]):.1f}" '
                     f'y2="{cy:.1f}" stroke="{color_v}" stroke-width="2"/>')
        for v in samples.get(key, []):
            parts.append(f'<circle cx="{x(v):.1f}" cy="{cy:.1f}" r="3.5" fill="{color_v}" '
                         'fill-opacity="0.55"/>')
        mx = x(s["median_s"])
        parts.append(f'<line x1="{mx:.1f}" y1="{cy - 10:.1f}" x2="{mx:.1f}" y2="{cy + 10:.1f}" '
                     f'stroke="{color_v}" stroke-width="3"/>')
        parts.append(f'<text x="{min(mx + 6, width - 60):.1f}" y="{cy - 6:.1f}" '
                     f'fill="{color_v}">{_e(_fmt_s(s["median_s"]))}</text>')
    if bench.get("target_s"):
        tx = x(float(bench["target_s"]))
        parts.append(f'<line x1="{tx:.1f}" y1="{top - 4}" x2="{tx:.1f}" y2="{axis_y}" '
                     'stroke="#d62728" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{tx - 4:.1f}" y="{top - 6}" text-anchor="end" fill="#d62728">'
                     f'target {_e(_fmt_s(float(bench["target_s"])))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def fleet_chart(hosts: dict[str, Any]) -> str:
    """Ratio default/tuned per benchmark (groups) and host (bars); 1.0 = no change."""
    names: list[str] = []
    for h in hosts.values():
        for b in h.get("benchmarks", []):
            if b["name"] not in names:
                names.append(b["name"])
    host_names = list(hosts)
    if not names:
        return '<p class="muted">No benchmark results.</p>'
    bar_h, gap, right, top = 14, 12, 60, 24
    many = len(host_names) > 1
    # one host: the benchmark names label the bars; several: a title row per benchmark
    left = 40 + 7 * max(len(h) for h in host_names) if many else 190
    rows = sum(len(host_names) + (1 if many else 0) for _ in names)
    height = top + rows * bar_h + len(names) * gap + 30
    width = 760
    ratios = [b.get("ratio") or 0 for h in hosts.values() for b in h.get("benchmarks", [])]
    vmax = max(2.0, _nice_max(max(ratios, default=1.0) * 1.1))

    def x(v: float) -> float:
        return left + (width - left - right) * (v / vmax)

    parts = [f'<svg width="{width}" height="{height}" '
             'role="img" aria-label="ratio default/tuned per benchmark and host">']
    parts.append('<text x="4" y="14" font-weight="bold">ratio default ÷ tuned '
                 '(above 1: tuned is faster)</text>')
    y = top
    for name in names:
        parts.append(f'<text x="4" y="{y + bar_h - 3}" font-weight="bold">{_e(name)}</text>')
        if many:
            y += bar_h
        for hn in host_names:
            bench = next((b for b in hosts[hn].get("benchmarks", []) if b["name"] == name), None)
            if many:
                parts.append(f'<text x="{left - 6}" y="{y + bar_h - 3}" text-anchor="end" '
                             f'fill="#555">{_e(hn)}</text>')
            if bench and bench.get("ratio") is not None:
                r = float(bench["ratio"])
                color = VERDICT_COLOR.get(bench["verdict"], "#777")
                parts.append(f'<rect x="{left}" y="{y + 1}" width="{max(x(r) - left, 1):.1f}" '
                             f'height="{bar_h - 2}" fill="{color}"/>')
                parts.append(f'<text x="{x(r) + 4:.1f}" y="{y + bar_h - 3}">{r:.2f}×</text>')
            else:
                parts.append(f'<text x="{left + 4}" y="{y + bar_h - 3}" fill="#d62728">'
                             'no result</text>')
            y += bar_h
        y += gap
    one = x(1.0)
    parts.append(f'<line x1="{one:.1f}" y1="{top - 4}" x2="{one:.1f}" y2="{y}" stroke="#222" '
                 'stroke-dasharray="3 3"/>')
    parts.append(f'<text x="{one:.1f}" y="{y + 14}" text-anchor="middle">1.0</text>')
    parts.append("</svg>")
    return "".join(parts)


def trend_chart(points: list[dict[str, Any]], name: str) -> str:
    """Tuned and default medians of one benchmark over the runs kept on the host."""
    series = {"tuned": [], "default": []}  # type: dict[str, list[tuple[int, float]]]
    for i, p in enumerate(points):
        b = next((b for b in p.get("benchmarks", []) if b.get("name") == name), None)
        if not b:
            continue
        for key in series:
            v = b.get(f"{key}_s")
            if isinstance(v, (int, float)):
                series[key].append((i, float(v)))
    if len(series["tuned"]) < 2:
        return ""
    width, height, left, right, top, bottom = 360, 150, 56, 10, 22, 28
    vmax = _nice_max(max(v for s in series.values() for _, v in s) * 1.1)
    n = max(len(points) - 1, 1)

    def x(i: int) -> float:
        return left + (width - left - right) * i / n

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - v / vmax)

    parts = [f'<svg width="{width}" height="{height}" '
             f'role="img" aria-label="trend {_e(name)}">',
             f'<text x="4" y="14" font-weight="bold">{_e(name)}</text>',
             f'<text x="{width - right}" y="14" text-anchor="end"><tspan fill="{TUNED_COLOR}">'
             f'tuned</tspan> <tspan fill="{DEFAULT_COLOR}">default</tspan></text>']
    for i in range(3):
        v = vmax * i / 2
        parts.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{width - right}" y2="{y(v):.1f}" '
                     'stroke="#eee"/>')
        parts.append(f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end" '
                     f'fill="#555">{_e(_fmt_s(v))}</text>')
    for key, color in (("tuned", TUNED_COLOR), ("default", DEFAULT_COLOR)):
        pts = series[key]
        if not pts:
            continue
        path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in pts)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" '
                     'stroke-width="2"/>')
        for i, v in pts:
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}"/>')
    first, last = points[0].get("time"), points[-1].get("time")
    for t, anchor, xpos in ((first, "start", left), (last, "end", width - right)):
        if isinstance(t, (int, float)):
            label = dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%m-%d %H:%M")
            parts.append(f'<text x="{xpos}" y="{height - 8}" text-anchor="{anchor}" '
                         f'fill="#555">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _host_section(name: str, host: dict[str, Any]) -> str:
    verdict = host.get("verdict", "fail")
    out = [f'<h2 id="host-{_e(name)}">{_e(name)} <span class="{_e(verdict)}">'
           f'{_e(verdict.upper())}</span></h2>']
    meta = []
    if host.get("user"):
        meta.append(f"user <code>{_e(host['user'])}</code>")
    if host.get("duration_s") is not None:
        meta.append(f"{_e(host['duration_s'])} s")
    if meta:
        out.append(f'<p class="muted">{" · ".join(meta)}</p>')
    if host.get("diagnosis"):
        out.append("<h3>Diagnosis</h3><ul>")
        out += [f"<li><b>{_e(d['cause'])}</b>: {_e(d['detail'])}</li>" for d in host["diagnosis"]]
        out.append("</ul>")
    benches = host.get("benchmarks", [])
    if benches:
        out.append("<h3>Benchmarks: tuned vs Go's defaults (interleaved runs)</h3>")
        out.append("<table><tr><th>benchmark</th><th>target</th><th>tuned median "
                   "(min–max, n)</th><th>default median (min–max, n)</th><th>ratio</th>"
                   "<th>verdict</th></tr>")
        for b in benches:
            cells = []
            for key in ("tuned", "default"):
                s = b.get(key)
                cells.append(f"{_fmt_s(s['median_s'])} ({_fmt_s(s['min_s'])}–"
                             f"{_fmt_s(s['max_s'])}, {s['runs']})" if s else "-")
            target = _fmt_s(b["target_s"]) if b.get("target_s") is not None else ""
            if b.get("target_met") is False:
                target = f'<span class="bad">{_e(target)} missed</span>'
            else:
                target = _e(target)
            ratio = f"{b['ratio']:.2f}×" if b.get("ratio") is not None else "-"
            verdict_b = b["verdict"] + (f": {b['error']}" if b.get("error") else "")
            color = VERDICT_COLOR.get(b["verdict"], "#222")
            out.append(f"<tr><td>{_e(b['name'])}</td><td>{target}</td><td>{_e(cells[0])}</td>"
                       f"<td>{_e(cells[1])}</td><td>{_e(ratio)}</td>"
                       f'<td style="color:{color}">{_e(verdict_b)}</td></tr>')
        out.append('</table><div class="charts">')
        for b in benches:
            if b.get("tuned") or b.get("default"):
                out.append(f'<div class="chart">{ab_chart(b)}</div>')
        out.append("</div>")
    if host.get("numa_wrappers"):
        out.append(_wrappers_table(host["numa_wrappers"]))
    out.append("<h3>State checks</h3><table><tr><th></th><th>check</th><th>detail</th></tr>")
    for c in host.get("checks", []):
        mark = '<span class="ok">✔</span>' if c["ok"] else '<span class="bad">✘</span>'
        out.append(f"<tr><td>{mark}</td><td>{_e(c['name'])}</td><td>{_e(c['detail'])}</td></tr>")
    out.append("</table>")
    points = [*(host.get("history") or []), _current_point(host)]
    trends = [trend_chart(points, b["name"]) for b in benches]
    trends = [t for t in trends if t]
    out.append("<h3>Trend (medians of earlier runs on this host)</h3>")
    if trends:
        out.append('<div class="charts">' + "".join(f'<div class="chart">{t}</div>'
                                                    for t in trends) + "</div>")
    else:
        out.append('<p class="muted">First run on this host: the trend appears from the '
                   "second run.</p>")
    return "\n".join(out)


def _wrappers_table(tools: dict[str, Any]) -> str:
    """The NUMA wrappers' plain vs wrapped figures that apply measured (issue 5)."""
    rows = ["<h3>NUMA wrappers (measured by apply: plain vs wrapped)</h3><table><tr>"
            "<th>tool</th><th>policy</th><th>plain median</th><th>wrapped median</th>"
            "<th>verdict</th><th>kept</th></tr>"]
    for tool, e in sorted(tools.items()):
        if not isinstance(e, dict):
            continue
        plain, wrapped = e.get("plain_s") or [], e.get("wrapped_s") or []
        med = [statistics.median(v) if v else None for v in (plain, wrapped)]
        verdict_w = e.get("error") or e.get("verdict") or "-"
        policy = " ".join(str(a) for a in e.get("numactl_args") or [])
        rows.append(f"<tr><td>{_e(tool)}</td><td><code>{_e(policy)}</code></td>"
                    f"<td>{_e(_fmt_s(med[0]))} (n={len(plain)})</td>"
                    f"<td>{_e(_fmt_s(med[1]))} (n={len(wrapped)})</td><td>{_e(verdict_w)}</td>"
                    f"<td>{'yes' if e.get('keep') else 'no (removed)'}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _current_point(host: dict[str, Any]) -> dict[str, Any]:
    from gotune.verify.result import history_record

    return history_record(host)


def render(result: dict[str, Any], generated: float | None = None) -> str:
    """The whole page.

    + result: ``{"hosts": {...}}`` as ``gotune verify --json`` prints it
    + generated: unix time shown in the header (default: now)
    """
    hosts = result.get("hosts", {})
    when = dt.datetime.fromtimestamp(generated or dt.datetime.now().timestamp(), dt.timezone.utc)
    passed = sum(1 for h in hosts.values() if h.get("verdict") == "pass")
    body = [f"<h1>gotune verify — {passed} of {len(hosts)} hosts pass</h1>",
            f'<p class="muted">{when.strftime("%Y-%m-%d %H:%M UTC")}. Ratio = default median ÷ '
            f"tuned median. A difference counts only with at least {MIN_RUNS_FOR_VERDICT} runs "
            "per variant, when the ranges of the runs do not overlap, the medians differ by "
            f"at least {NOISE_FRACTION:.0%} and a second batch of runs confirms it; otherwise "
            "it is “no measurable difference”.</p>"]
    body.append("<table><tr><th>host</th><th>verdict</th><th>failed checks</th>"
                "<th>benchmarks</th></tr>")
    for name, h in hosts.items():
        failed = [c["name"] for c in h.get("checks", []) if not c["ok"]]
        verdicts = ", ".join(f"{b['name']}: {b['verdict']}" for b in h.get("benchmarks", []))
        body.append(f'<tr><td><a href="#host-{_e(name)}">{_e(name)}</a></td>'
                    f'<td><span class="{_e(h.get("verdict"))}">{_e(h.get("verdict"))}</span></td>'
                    f"<td>{_e(', '.join(failed) or '-')}</td><td>{_e(verdicts or '-')}</td></tr>")
    body.append("</table>")
    body.append(f'<div class="chart">{fleet_chart(hosts)}</div>')
    for name, h in hosts.items():
        body.append(_host_section(name, h))
    # JSON inside <script> is raw text: escape what could end the element.
    data = (json.dumps(result, sort_keys=True, default=str).replace("&", "\\u0026")
            .replace("<", "\\u003c").replace(">", "\\u003e"))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>gotune verify report</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body)
            + f'\n<script type="application/json" id="gotune-verify-data">{data}</script>'
            "\n</body></html>\n")


def write_report(result: dict[str, Any], directory: str | Path) -> Path:
    """Write the page to ``DIRECTORY/gotune-verify.html``; its path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = d / REPORT_NAME
    path.write_text(render(result), encoding="utf-8")
    return path
