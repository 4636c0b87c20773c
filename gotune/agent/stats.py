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
# The variants verify compares (gotune.agent.verify.variants): now, the user's setup
# before gotune (apply's baseline), and Go's defaults.
VARIANTS = ("tuned", "before", "default")
# More runs would keep a host busy for many minutes per benchmark (verify's --runs, apply's
# gotune_buildcache_measure_runs).
MAX_RUNS = 50
# Medians this many times apart, ranges apart, need no confirming batch: on a shared
# 2-core machine another job can at most double a build's time, never triple it.
DECISIVE_RATIO = 3.0


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
    """other / tuned (default or before): above 1 the tuned setup is faster. None when
    tuned took no time."""
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


def _samples(raw: dict[str, Any]) -> dict[str, list[float]]:
    """Each variant's seconds; a variant measured as another (``same_as``) gets its runs."""
    found = {k: [float(x) for x in v or []] for k, v in (raw.get("samples") or {}).items()}
    for name, other in (raw.get("same_as") or {}).items():
        found[name] = list(found.get(other) or [])
    return found


def benchmark_result(raw: dict[str, Any]) -> dict[str, Any]:
    """The JSON for one benchmark from the runner's samples.

    + raw: the runner's result: ``samples`` per variant (tuned, before, default),
      ``confirm_from``, ``error``; ``same_as`` ({"before": "default"}) names a variant
      that was the same environment as another, measured once

    ``ratio`` is default ÷ tuned, ``headline_ratio`` before ÷ tuned (the user's own
    setup before gotune against now); ``verdict`` is tuned against default,
    ``verdicts`` against each other variant. ``target_met`` judges the tuned median
    (the figure a developer lives with), ``targets_met`` every variant's; both are
    None when the benchmark has no target or could not run (an error is never a
    missed target).
    """
    samples = _samples(raw)
    split = raw.get("confirm_from")
    error = raw.get("error")
    summaries = {k: summarize(samples.get(k) or []) for k in VARIANTS}
    tuned, default, before = summaries["tuned"], summaries["default"], summaries["before"]
    out: dict[str, Any] = {
        "name": raw.get("name"),
        "target_s": raw.get("target_s"),
        "tuned": _with_samples(tuned, samples.get("tuned")),
        "default": _with_samples(default, samples.get("default")),
        "before": _with_samples(before, samples.get("before")),
        "ratio": None,
        "headline_ratio": None,
        "verdict": ERROR if error else replicated_verdict(
            samples.get("tuned") or [], samples.get("default") or [], split),
        "verdicts": {},
        "target_met": None,
        "targets_met": {},
    }
    for other in ("default", "before"):
        if summaries[other] is not None and not error:
            out["verdicts"][other] = replicated_verdict(
                samples.get("tuned") or [], samples.get(other) or [], split)
    if split:
        out["confirm_from"] = split
    if tuned and not error:
        if default:
            out["ratio"] = _rounded(ratio(tuned, default))
        if before:
            out["headline_ratio"] = _rounded(ratio(tuned, before))
    if error:
        out["error"] = error
    target = raw.get("target_s")
    if target is not None and not error:
        out["targets_met"] = {k: s.median_s <= float(target) for k, s in summaries.items() if s}
        out["target_met"] = out["targets_met"].get("tuned")
    for key in ("warmup_s", "uses", "project", "unmeasurable", "same_as"):
        if raw.get(key):
            out[key] = raw[key]
    if raw.get("cold"):
        out["cold"] = True
    return out


def _rounded(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def _with_samples(summary: Summary | None, samples: list[float] | None) -> dict[str, Any] | None:
    if summary is None:
        return None
    return summary.to_dict() | {"samples_s": [round(float(x), 4) for x in samples or []]}


def benchmark_ok(result: dict[str, Any]) -> bool:
    """A benchmark passes unless it failed to run, missed its target or tuned is slower
    than Go's defaults or than the user's setup before gotune.

    A project that does not build is reported, never a failed tuning: the seed's
    benchmarks fail when the tuned environment itself cannot build.
    """
    if result.get("verdict") == ERROR:
        return bool(result.get("project"))
    if SLOWER in (result.get("verdict"), *(result.get("verdicts") or {}).values()):
        return False
    # The targets are for warm builds (the stdlib in the cache and in RAM, as on any
    # machine used for Go): a cold page cache (--cold) is reported against them, not judged.
    return bool(result.get("cold")) or result.get("target_met") is not False
