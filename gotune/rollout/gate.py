"""The gate after each wave: does a host pass, judged from its apply and verify results?

Verify measures tuned against the host's baseline on every host; the gate turns that
into continue or stop, as an Argo Rollouts analysis run does for a step. A host passes
when its apply succeeded and verify found nothing wrong:

- ``fail``: no state check failed, the runner ran, no benchmark failed to run (a
  ``--project`` that does not build is reported, as verify does, not gated);
- ``slower`` (the default): also no benchmark that verify calls "slower" than the
  host's baseline (interleaved runs, confirmed by a second batch). The baseline is the
  user's own setup before gotune (the ``before`` variant, recorded by apply) where
  verify measured it, else Go's defaults (``baseline``).

A benchmark target missed (an absolute time such as 0.3 s for a repeat build) does not
close the gate: it says the machine is slow, not that the rollout made it slower. It is
in the host's verify result (``target_met``) and the report.
"""

from __future__ import annotations

from typing import Any

from gotune.agent.stats import ERROR, SLOWER

GATE_FAIL, GATE_SLOWER = "fail", "slower"
GATES = (GATE_FAIL, GATE_SLOWER)
DEFAULT_GATE = GATE_SLOWER
BASELINE_TEXT = {"before": "the setup before gotune", "default": "Go's defaults"}
# Reasons kept per host: the first few say why; the verify result has them all.
MAX_REASONS = 5


def baseline(benchmark: dict[str, Any]) -> tuple[str, str | None, float | None]:
    """(``before`` or ``default``, tuned's verdict against it, baseline ÷ tuned) for one
    benchmark of verify's JSON: the setup before gotune where verify measured it."""
    verdicts = benchmark.get("verdicts") or {}
    if benchmark.get("before") and "before" in verdicts:
        return "before", verdicts["before"], _number(benchmark.get("headline_ratio"))
    return "default", verdicts.get("default", benchmark.get("verdict")), _number(
        benchmark.get("ratio"))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def judge(applied: dict[str, Any], verified: dict[str, Any] | None, gate: str) -> list[str]:
    """Why the host does not pass (empty: it passes).

    + applied: the host's entry of ``gotune apply --json`` (``ok``, ``error``)
    + verified: its ``gotune verify --json`` result, None when verify did not run
    + gate: ``fail`` or ``slower``
    """
    if not applied.get("ok"):
        return [f"apply: {applied.get('error') or 'failed'}"]
    if verified is None:
        return ["not verified"]
    reasons = [f"check {c['name']}: {c['detail']}" for c in verified.get("checks") or []
               if not c.get("ok")]  # fmt: skip
    for b in verified.get("benchmarks") or []:
        if b.get("verdict") == ERROR:
            if not b.get("project"):
                reasons.append(f"benchmark {b['name']}: {b.get('error') or 'did not run'}")
            continue
        against, verdict, ratio = baseline(b)
        if verdict == SLOWER and gate == GATE_SLOWER:
            shown = f" ({against} ÷ tuned {ratio:.2f})" if ratio is not None else ""
            reasons.append(f"benchmark {b['name']}: tuned is slower than "
                           f"{BASELINE_TEXT[against]}{shown}")
    return reasons[:MAX_REASONS]
