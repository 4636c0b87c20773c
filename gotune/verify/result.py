"""One host's verify result from the runner's raw observations (pure).

The JSON shape is the contract of ``gotune verify --json``::

    {"verdict": "pass"|"fail",
     "checks": [{"name", "ok", "detail"}],
     "benchmarks": [{"name", "target_s", "tuned": {median_s, min_s, max_s, runs},
                     "default": {...}, "ratio", "verdict", "target_met"}],
     "diagnosis": [{"cause", "detail"}],
     "history": [earlier results, oldest first], "user": NAME, ...}
"""

from __future__ import annotations

import time
from typing import Any

from gotune.agent.stats import benchmark_ok, benchmark_result
from gotune.plan.model import Plan
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
    benchmarks = [
        benchmark_result(b) for rec in users.values() for b in rec.get("benchmarks") or []
    ]
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
    }
    if raw.get("numa_wrappers"):
        result["numa_wrappers"] = raw["numa_wrappers"]
    if raw.get("history_path"):
        result["history_path"] = raw["history_path"]
    return result


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
             "ratio": b.get("ratio"), "verdict": b.get("verdict")}
            for b in result.get("benchmarks", [])
        ],
    }
