"""The HTML report: one self-contained page for a whole fleet.

The page is ``templates/verify-report.html.j2`` (a host's section in
``verify-host.html.j2``, the charts in ``verify-charts.html.j2``), rendered with
autoescape on, so no string from a host reaches the page unescaped. No external
scripts, styles, fonts or images: the CSS is inline and every chart an inline
SVG laid out from ``gotune.verify.charts``, so the page opens offline and can be
mailed as one file. The result itself rides along as JSON for machines.

This module only shapes the result for the templates: every key they read is
present (None where the result has nothing), so a template never guesses.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from pathlib import Path
from typing import Any

from gotune.agent.stats import MIN_RUNS_FOR_VERDICT, NOISE_FRACTION
from gotune.templating import html_environment
from gotune.verify import charts
from gotune.verify.result import history_record
from gotune.verify.table import seconds

REPORT_NAME = "gotune-verify.html"
REPORT_TEMPLATE = "verify-report.html.j2"


def _bench(b: dict[str, Any]) -> dict[str, Any]:
    """One benchmark row, and its chart when any variant ran."""
    ran = bool(b.get("tuned") or b.get("default") or b.get("before"))
    _ratio, shown = charts.headline_of(b)
    missed_by = [k for k in ("before", "default")
                 if (b.get("targets_met") or {}).get(k) is False]
    return {
        "name": b["name"], "verdict": b["verdict"], "error": b.get("error"),
        "shown_verdict": "error" if b.get("error") else shown,
        "target_s": b.get("target_s"), "target_met": b.get("target_met"),
        "missed_by": missed_by,
        "tuned": b.get("tuned"), "default": b.get("default"), "before": b.get("before"),
        "ratio": b.get("ratio"), "headline_ratio": b.get("headline_ratio"),
        "explanation": b.get("explanation"), "project": b.get("project"),
        "color": charts.VERDICT_COLOR.get("error" if b.get("error") else shown, "#222"),
        "chart": charts.ab(b) if ran else None,
    }  # fmt: skip


def _variants(host: dict[str, Any]) -> list[dict[str, Any]]:
    """Each variant's row: its summary and every place with its filesystem and class."""
    rows = []
    for name, v in (host.get("variants") or {}).items():
        places = [{"key": k, "path": p.get("path"), "fstype": p.get("fstype"),
                   "class": p.get("class"), "mount": p.get("mount"), "device": p.get("device")}
                  for k, p in (v.get("places") or {}).items()]
        rows.append({"name": name, "summary": v.get("summary"), "places": places,
                     "go": v.get("go"), "go_version": v.get("go_version"),
                     "color": charts.VARIANT_COLOR.get(name, "#222")})
    return rows


def _wrappers(tools: dict[str, Any]) -> list[dict[str, Any]]:
    """The NUMA wrappers' plain vs wrapped figures that apply measured."""
    rows = []
    for tool, e in sorted(tools.items()):
        if not isinstance(e, dict):
            continue
        plain, wrapped = e.get("plain_s") or [], e.get("wrapped_s") or []
        rows.append({
            "tool": tool, "policy": " ".join(str(a) for a in e.get("numactl_args") or []),
            "plain_s": statistics.median(plain) if plain else None, "plain_n": len(plain),
            "wrapped_s": statistics.median(wrapped) if wrapped else None,
            "wrapped_n": len(wrapped),
            "verdict": e.get("error") or e.get("verdict") or "-", "keep": bool(e.get("keep")),
        })  # fmt: skip
    return rows


def _host(name: str, host: dict[str, Any]) -> dict[str, Any]:
    """One host's section: verdict, headline, variants, diagnosis, benchmarks, wrappers,
    checks, trend."""
    checks = host.get("checks") or []
    benches = [_bench(b) for b in host.get("benchmarks") or []]
    # the trend: what earlier runs left on the host, then this run
    points = [*(host.get("history") or []), history_record(host)]
    trends = [{"name": b["name"], "chart": charts.trend(points, b["name"])} for b in benches]
    return {
        "name": name, "verdict": host.get("verdict") or "fail", "user": host.get("user"),
        "duration_s": host.get("duration_s"), "diagnosis": host.get("diagnosis") or [],
        "checks": checks, "failed": [c["name"] for c in checks if not c["ok"]],
        "benchmarks": benches, "wrappers": _wrappers(host.get("numa_wrappers") or {}),
        "headline": host.get("headline"), "variants": _variants(host),
        "with_before": any(b["before"] for b in benches), "cold": bool(host.get("cold")),
        "workload": host.get("workload"),
        "trends": [t for t in trends if t["chart"]],
    }  # fmt: skip


def page(result: dict[str, Any], generated: float | None = None) -> dict[str, Any]:
    """What the report template reads (``page``) for a ``gotune verify --json`` result."""
    hosts = result.get("hosts") or {}
    views = [_host(name, h) for name, h in hosts.items()]
    return {
        "generated": dt.datetime.fromtimestamp(generated or time.time(), dt.timezone.utc),
        "hosts": views,
        "passed": sum(1 for h in views if h["verdict"] == "pass"),
        "min_runs": MIN_RUNS_FOR_VERDICT,
        "noise_fraction": NOISE_FRACTION,
        "fleet": charts.fleet(hosts),
        "result": result,
    }


def render(result: dict[str, Any], generated: float | None = None) -> str:
    """The whole page.

    + result: ``{"hosts": {...}}`` as ``gotune verify --json`` prints it
    + generated: unix time shown in the header (default: now)
    """
    template = html_environment().get_template(REPORT_TEMPLATE)
    return template.render(page=page(result, generated), seconds=seconds)


def write_report(result: dict[str, Any], directory: str | Path) -> Path:
    """Write the page to ``DIRECTORY/gotune-verify.html``; its path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = d / REPORT_NAME
    path.write_text(render(result), encoding="utf-8")
    return path
