"""The gate after each wave: does a host pass, judged from its apply and verify results?

Verify measures tuned against Go's defaults on every host; the gate turns that into
continue or stop, as an Argo Rollouts analysis run does for a step. A host passes when
its apply succeeded and verify found nothing wrong:

- ``fail``: no state check failed, the runner ran, no benchmark failed to run;
- ``slower`` (the default): also no benchmark that verify calls "slower" than the
  host's baseline (tuned against default, interleaved runs, confirmed by a second batch).

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
# Reasons kept per host: the first few say why; the verify result has them all.
MAX_REASONS = 5


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
            reasons.append(f"benchmark {b['name']}: {b.get('error') or 'did not run'}")
        elif b.get("verdict") == SLOWER and gate == GATE_SLOWER:
            ratio = b.get("ratio")
            shown = f" (default ÷ tuned {ratio:.2f})" if isinstance(ratio, int | float) else ""
            reasons.append(f"benchmark {b['name']}: tuned is slower than default{shown}")
    return reasons[:MAX_REASONS]
