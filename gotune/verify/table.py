"""The terminal table of a verify result: one block per host.

Per host: the verdict, the headline (did builds get faster than before gotune, and
why), what each variant is, the benchmarks (tuned, before and Go's defaults side by
side, each with its explanation), the checks and the diagnosis.
"""

from __future__ import annotations

from typing import Any

# The benchmark table's columns after the name; "before" only where a host has one. The
# ratios: "before/tuned" (the headline) and "ratio" (default/tuned, as it always was).
VARIANT_COLUMNS = ("tuned", "before", "default")


def seconds(value: float | None) -> str:
    """A duration for people: milliseconds below a second; "-" when there is none."""
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _variant(s: dict[str, Any] | None) -> str:
    if not s:
        return "-"
    return f"{seconds(s['median_s'])} ({seconds(s['min_s'])}-{seconds(s['max_s'])}, n={s['runs']})"


def _ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "-"


def _target(b: dict[str, Any]) -> str:
    """The target, MISSED when tuned misses it, and which other variants miss it."""
    if b.get("target_s") is None:
        return ""
    text = seconds(b["target_s"])
    met = b.get("targets_met") or {}
    if b.get("target_met") is False:
        text += " MISSED"
    others = [k for k in ("before", "default") if met.get(k) is False]
    if others:
        text += f" (missed by {', '.join(others)})"
    return text


def _rows(host: dict[str, Any]) -> list[tuple[str, ...]]:
    with_before = any(b.get("before") for b in host.get("benchmarks", []))
    cols = [c for c in VARIANT_COLUMNS if c != "before" or with_before]
    header = ("benchmark", "target", *(f"{c} median (min-max, n)" for c in cols),
              *(["before/tuned"] if with_before else []), "ratio")
    rows: list[tuple[str, ...]] = [header]
    for b in host.get("benchmarks", []):
        rows.append((b["name"], _target(b), *(_variant(b.get(c)) for c in cols),
                     *([_ratio(b.get("headline_ratio"))] if with_before else []),
                     _ratio(b.get("ratio"))))
    return rows


def _verdict(b: dict[str, Any]) -> str:
    if b.get("error"):
        return f"error: {b['error']}"
    verdicts = b.get("verdicts") or {}
    if "before" in verdicts:
        return f"vs before: {verdicts['before']}; vs default: {b['verdict']}"
    return str(b["verdict"])


def render(result: dict[str, Any]) -> str:
    """Text for people: verdict, headline, variants, benchmarks, checks and diagnosis per host."""
    lines: list[str] = []
    if result.get("cold"):
        lines.append("cold: the page cache was dropped before every timed run (--cold)")
    for name, host in result.get("hosts", {}).items():
        lines.append(f"{name}: {host['verdict'].upper()}"
                     + (f"  (user {host['user']}, {host.get('duration_s')} s)"
                        if host.get("user") else ""))
        head = host.get("headline")
        if head:
            ratio = f" {head['ratio']:.2f}x" if head.get("ratio") else ""
            lines.append(f"  headline: {head['benchmark']}:{ratio} vs {head['against']}: "
                         f"{head['text']}")
        for vname, v in (host.get("variants") or {}).items():
            lines.append(f"  {vname}: {v.get('summary', '')}")
        rows = _rows(host)
        if len(rows) > 1:
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            for i, r in enumerate(rows):
                cells = "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))
                b = host["benchmarks"][i - 1] if i else None
                lines.append("  " + cells + ("  " + _verdict(b) if b else "  verdict"))
                if b and b.get("explanation") and not b.get("error"):
                    lines.append(f"      why: {b['explanation']}")
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
