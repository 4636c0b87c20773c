"""The terminal table of a verify result: one block per host."""

from __future__ import annotations

from typing import Any


def seconds(value: float | None) -> str:
    """A duration for people: milliseconds below a second; "-" when there is none."""
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _variant(s: dict[str, Any] | None) -> str:
    if not s:
        return "-"
    return f"{seconds(s['median_s'])} ({seconds(s['min_s'])}-{seconds(s['max_s'])}, n={s['runs']})"


def render(result: dict[str, Any]) -> str:
    """Text for people: verdict, benchmarks, checks and diagnosis per host."""
    lines: list[str] = []
    for name, host in result.get("hosts", {}).items():
        lines.append(f"{name}: {host['verdict'].upper()}"
                     + (f"  (user {host['user']}, {host.get('duration_s')} s)"
                        if host.get("user") else ""))
        rows = [("benchmark", "target", "tuned median (min-max, n)",
                 "default median (min-max, n)", "ratio", "verdict")]
        for b in host.get("benchmarks", []):
            target = seconds(b.get("target_s")) if b.get("target_s") is not None else ""
            if b.get("target_met") is False:
                target += " MISSED"
            verdict = b["verdict"] if not b.get("error") else f"error: {b['error']}"
            ratio = f"{b['ratio']:.2f}x" if b.get("ratio") is not None else "-"
            rows.append((b["name"], target, _variant(b.get("tuned")),
                         _variant(b.get("default")), ratio, verdict))
        if len(rows) > 1:
            widths = [max(len(r[i]) for r in rows) for i in range(5)]
            for r in rows:
                cells = [r[i].ljust(widths[i]) for i in range(5)]
                lines.append("  " + "  ".join(cells) + "  " + r[5])
        for c in host.get("checks", []):
            lines.append(f"  {'ok  ' if c['ok'] else 'FAIL'} {c['name']}: {c['detail']}")
        for d in host.get("diagnosis", []):
            lines.append(f"  cause: {d['cause']}: {d['detail']}")
        if host.get("history_error"):
            lines.append(f"  history not kept: {host['history_error']}")
        lines.append("")
    if result.get("report"):
        lines.append(f"report: {result['report']}")
    return "\n".join(lines).rstrip() + "\n"
