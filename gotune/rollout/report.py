"""The fleet report: one self-contained HTML page for a rollout.

``templates/rollout-report.html.j2`` (the chart in ``rollout-charts.html.j2``), rendered
with autoescape on through ``gotune.templating.html_environment``: no string from a host
reaches the page unescaped, and nothing is fetched (inline CSS, inline SVG), so the page
opens offline and can be mailed as one file. It shows the waves, each host's outcome
and verdict with its hardware class, and per benchmark the tuned/default ratios of the
hosts grouped by hardware class (``gotune.rollout.charts``). The ``--json`` document
rides along for machines.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from gotune.errors import GotuneError
from gotune.rollout import charts
from gotune.rollout.state import COUNTED, PASSED
from gotune.templating import html_environment

REPORT_NAME = "gotune-rollout.html"
REPORT_TEMPLATE = "rollout-report.html.j2"


def page(doc: dict[str, Any], generated: float | None = None) -> dict[str, Any]:
    """What the template reads (``page``) for a ``gotune rollout --json`` document."""
    hosts = doc.get("hosts") or {}
    rows = [{
        "name": name, "wave": h.get("wave"), "outcome": h.get("outcome"),
        "skipped": bool(h.get("skipped")), "changed": h.get("changed"),
        "verdict": h.get("verdict"), "gate": h.get("gate") or [],
        "hardware": (h.get("hardware") or {}).get("label") or "-",
        "undone": h.get("undone"), "undo_error": h.get("undo_error"),
        "benchmarks": [f"{b['name']}: {b.get('verdict')}" for b in h.get("benchmarks") or []],
    } for name, h in hosts.items()]  # fmt: skip
    distributions = [charts.distribution(hosts, n) for n in charts.benchmark_names(hosts)]
    return {
        "generated": dt.datetime.fromtimestamp(generated or time.time(), dt.timezone.utc),
        "hosts": rows, "waves": doc.get("waves") or [],
        "passed": sum(1 for r in rows if r["outcome"] == PASSED),
        "failed": sum(1 for r in rows if r["outcome"] in COUNTED),
        "halted": doc.get("halted"), "interrupted": doc.get("interrupted"),
        "reason": doc.get("reason"), "elapsed_s": doc.get("elapsed_s"),
        "charts": [c for c in distributions if c], "result": doc,
    }  # fmt: skip


def render(doc: dict[str, Any], generated: float | None = None) -> str:
    """The whole page.

    + doc: the ``gotune rollout --json`` document
    + generated: unix time shown in the header (default: now)
    """
    return html_environment().get_template(REPORT_TEMPLATE).render(page=page(doc, generated))


def write_report(doc: dict[str, Any], directory: str | Path) -> Path:
    """Write the page to ``DIRECTORY/gotune-rollout.html``; its path."""
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
        path = d / REPORT_NAME
        path.write_text(render(doc), encoding="utf-8")
    except OSError as exc:
        raise GotuneError(f"cannot write the report to {directory}: {exc.strerror}") from None
    return path
