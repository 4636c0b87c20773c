"""One host's verify result from the runner's raw observations (pure).

The JSON shape is the contract of ``gotune verify --json``::

    {"verdict": "pass"|"fail",
     "checks": [{"name", "ok", "detail"}],
     "benchmarks": [{"name", "target_s", "tuned": {median_s, min_s, max_s, runs},
                     "default": {...}, "ratio", "verdict", "target_met",
                     "before": {...} | null, "headline_ratio", "verdicts",
                     "targets_met", "explanation", "uses", "project"?}],
     "diagnosis": [{"cause", "detail"}],
     "variants": {"tuned"|"before"|"default": {"env", "places", "go", "summary",
                  "same_as"?, "unmeasurable"?, "missing"?}},
     "headline": {"against", "benchmark", "ratio", "verdict", "text"} | null,
     "cold": bool, "workload": {...}?,
     "history": [earlier results, oldest first], "user": NAME, ...}

``ratio`` is default ÷ tuned (as it always was); ``headline_ratio`` is before ÷
tuned, the user's own setup before gotune against now.
"""

from __future__ import annotations

import time
from typing import Any

from gotune.agent.stats import VARIANTS, benchmark_ok, benchmark_result
from gotune.plan.model import Plan
from gotune.verify import explain
from gotune.verify.checks import check, host_checks
from gotune.verify.diagnose import diagnose


def host_result(raw: dict[str, Any], plan: Plan | None = None) -> dict[str, Any]:
    """Checks, benchmark statistics, verdict and diagnosis for one host.

    + raw: what ``gotune.agent.verify.runner`` printed for the host
    + plan: the plan apply stored on the host; None compares with the GOENV file
    """
    if raw.get("error"):
        checks = [check("runner", False, str(raw["error"]))]
        return {"verdict": "fail", "checks": checks, "benchmarks": [],
                "diagnosis": diagnose(raw, checks, [], True), "history": raw.get("history", [])}
    users = raw.get("users") or {}
    checks = host_checks(raw, plan)
    first: dict[str, Any] = next(iter(users.values()), {})
    variants = first.get("variants") or {}
    cold = bool(raw.get("cold"))
    benchmarks = [benchmark_result(with_variants(b, variants))
                  for rec in users.values() for b in rec.get("benchmarks") or []]
    for b in benchmarks:
        b["explanation"] = explain.benchmark(b, variants, cold)
    failed = any(not c["ok"] for c in checks) or any(not benchmark_ok(b) for b in benchmarks)
    result: dict[str, Any] = {
        "verdict": "fail" if failed else "pass",
        "checks": checks,
        "benchmarks": benchmarks,
        "diagnosis": diagnose(raw, checks, benchmarks, failed),
        "user": next(iter(users), None),
        "time": raw.get("finished") or time.time(),
        "duration_s": round(float(raw.get("finished", 0)) - float(raw.get("started", 0)), 1),
        "history": list(raw.get("history") or []),
        "variants": variants_view(variants),
        "headline": explain.headline(benchmarks, variants, cold),
        "cold": cold,
    }
    if first.get("workload"):
        result["workload"] = first["workload"]
    if raw.get("numa_wrappers"):
        result["numa_wrappers"] = raw["numa_wrappers"]
    if raw.get("history_path"):
        result["history_path"] = raw["history_path"]
    return result


def with_variants(raw: dict[str, Any], variants: dict[str, Any]) -> dict[str, Any]:
    """A runner benchmark with what the variants say about it: ``before`` measured as
    another variant (``same_as``), or not measurable at all (``unmeasurable``)."""
    before = variants.get("before") or {}
    out = dict(raw)
    if before.get("same_as"):
        out["same_as"] = {"before": before["same_as"]}
    why = before.get("unmeasurable") or before.get("missing")
    if why and "before" not in (out.get("unmeasurable") or {}):
        out["unmeasurable"] = dict(out.get("unmeasurable") or {}, before=why)
    return out


def variants_view(variants: dict[str, Any]) -> dict[str, Any]:
    """Each variant as the report shows it: the runner's description and one line of text."""
    return {name: dict(variants.get(name) or {}, summary=explain.variant_text(variants, name))
            for name in VARIANTS if name in variants}


def history_record(result: dict[str, Any]) -> dict[str, Any]:
    """The compact line kept on the host for the trend: medians and verdicts only."""
    return {
        "time": result.get("time"),
        "verdict": result.get("verdict"),
        "failed_checks": [c["name"] for c in result.get("checks", []) if not c["ok"]],
        "benchmarks": [
            {"name": b["name"],
             "tuned_s": (b.get("tuned") or {}).get("median_s"),
             "default_s": (b.get("default") or {}).get("median_s"),
             "before_s": (b.get("before") or {}).get("median_s"),
             "ratio": b.get("ratio"), "headline_ratio": b.get("headline_ratio"),
             "verdict": b.get("verdict")}
            for b in result.get("benchmarks", [])
        ],
    }
