"""A/B statistics for verify: medians, spread, ratio, and an honest verdict.

The verdict rule: a tuned setup counts as faster (or slower) only when each
variant ran at least ``MIN_RUNS_FOR_VERDICT`` times, the two variants' ranges
do not overlap AND the medians differ by at least ``NOISE_FRACTION`` — and, when
that first batch shows a difference, a second batch run to confirm it shows the
same (``replicated_verdict``). Anything else is "no measurable difference": with
a handful of interleaved runs on a shared machine, overlapping ranges mean the
runs cannot tell the variants apart.

Standard library only: on targets, the agent's ``numa-measure``
(``gotune.agent.numa_measure``) keeps a NUMA wrapper only when this rule says "faster".
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

# Below 5 % the medians of a few runs differ by scheduler and page-cache jitter
# alone (repeat runs of the same command on this 2-core VM spread 3-10 %).
NOISE_FRACTION = 0.05

# Fewer runs never give a verdict: two identical setups show non-overlapping
# ranges by chance with probability 2·n!·n!/(2n)! — 33 % at n=2, 10 % at n=3,
# 0.8 % at n=5 — so below 5 runs per variant any difference is noise.
MIN_RUNS_FOR_VERDICT = 5

FASTER = "faster"
SLOWER = "slower"
SAME = "no measurable difference"
ERROR = "error"
VERDICTS = (FASTER, SLOWER, SAME, ERROR)


@dataclass(frozen=True)
class Summary:
    """Seconds over the runs of one variant."""

    median_s: float
    min_s: float
    max_s: float
    runs: int

    def to_dict(self) -> dict[str, Any]:
        return {"median_s": round(self.median_s, 4), "min_s": round(self.min_s, 4),
                "max_s": round(self.max_s, 4), "runs": self.runs}


def summarize(samples: list[float]) -> Summary | None:
    """Median, min and max of the samples; None when there are none."""
    if not samples:
        return None
    return Summary(statistics.median(samples), min(samples), max(samples), len(samples))


def ratio(tuned: Summary, default: Summary) -> float | None:
    """default / tuned: above 1 the tuned setup is faster. None when tuned took no time."""
    if tuned.median_s <= 0:
        return None
    return default.median_s / tuned.median_s


def verdict(tuned: Summary | None, default: Summary | None) -> str:
    """faster, slower or "no measurable difference" (see the module docstring)."""
    if tuned is None or default is None:
        return ERROR
    r = ratio(tuned, default)
    if r is None or min(tuned.runs, default.runs) < MIN_RUNS_FOR_VERDICT:
        return SAME
    overlap = tuned.min_s <= default.max_s and default.min_s <= tuned.max_s
    if overlap or abs(r - 1.0) < NOISE_FRACTION:
        return SAME
    return FASTER if r > 1.0 else SLOWER


def replicated_verdict(tuned: list[float], default: list[float], split: int | None) -> str:
    """The verdict over all runs, or with a confirmation batch from index ``split`` on:
    faster/slower only when the first batch and the confirmation batch both say so.

    A runner confirms a difference its first batch shows by running a second
    batch; drift on a shared machine (another job starting halfway) can separate
    one batch's ranges, but rarely two batches' the same way.
    """
    if not split:
        return verdict(summarize(tuned), summarize(default))
    first = verdict(summarize(tuned[:split]), summarize(default[:split]))
    second = verdict(summarize(tuned[split:]), summarize(default[split:]))
    return first if first == second else SAME


def benchmark_result(raw: dict[str, Any]) -> dict[str, Any]:
    """The JSON for one benchmark from the runner's samples.

    ``target_met`` is None when the benchmark has no target; a target is judged
    on the tuned median, the figure a developer lives with.
    """
    samples = raw.get("samples") or {}
    t_all = [float(x) for x in samples.get("tuned") or []]
    d_all = [float(x) for x in samples.get("default") or []]
    tuned, default = summarize(t_all), summarize(d_all)
    error = raw.get("error")
    out: dict[str, Any] = {
        "name": raw.get("name"),
        "target_s": raw.get("target_s"),
        "tuned": _with_samples(tuned, samples.get("tuned")),
        "default": _with_samples(default, samples.get("default")),
        "ratio": None,
        "verdict": ERROR if error else replicated_verdict(t_all, d_all, raw.get("confirm_from")),
        "target_met": None,
    }
    if raw.get("confirm_from"):
        out["confirm_from"] = raw["confirm_from"]
    if tuned and default and not error:
        r = ratio(tuned, default)
        out["ratio"] = round(r, 3) if r is not None else None
    if error:
        out["error"] = error
    target = raw.get("target_s")
    if target is not None:
        out["target_met"] = bool(tuned and not error and tuned.median_s <= float(target))
    if raw.get("warmup_s"):
        out["warmup_s"] = raw["warmup_s"]
    return out


def _with_samples(summary: Summary | None, samples: list[float] | None) -> dict[str, Any] | None:
    if summary is None:
        return None
    return summary.to_dict() | {"samples_s": [round(float(x), 4) for x in samples or []]}


def benchmark_ok(result: dict[str, Any]) -> bool:
    """A benchmark passes unless it failed to run, missed its target or tuned is slower."""
    if result.get("verdict") in (ERROR, SLOWER):
        return False
    return result.get("target_met") is not False
