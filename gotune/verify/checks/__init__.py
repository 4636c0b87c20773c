"""State checks: does the host look, to the developer user, the way the stored plan says.

One module per component (``caches``, ``toolchain``, ``numa``, ``mirror``, ``buildcache``,
``wear``, ``wsl``),
each a set of pure functions from the runner's observations (``gotune.agent.verify``)
to ``{"name", "ok", "detail"}`` entries. What is expected comes from the plan
apply stored on the host (``/var/lib/gotune/plan.json``, read back as a typed
``Plan``); a host apply never ran on is compared with the user's GOENV file.
"""

from __future__ import annotations

from typing import Any

from gotune.plan.model import Plan
from gotune.verify.checks import buildcache, caches, mirror, numa, toolchain, wear, wsl
from gotune.verify.checks.base import check

__all__ = ["check", "host_checks", "user_checks"]


def user_checks(user: str, rec: dict[str, Any], plan: Plan | None = None) -> list[dict[str, Any]]:
    """Every check for one developer user."""
    out = caches.user_checks(user, rec, plan)
    if plan is not None and user == next(iter(plan.caches), None):
        out += toolchain.checks(user, rec, plan)
    out += numa.checks(user, rec)
    if rec.get("mirror"):
        out += mirror.checks(user, rec["mirror"])
    out += buildcache.checks(user, rec, plan)
    if rec.get("bench_error"):
        out.append(check(f"{user}: benchmarks ran", False, str(rec["bench_error"])))
    if rec.get("error"):
        out.append(check(f"{user}: runner", False, str(rec["error"])))
    return out


def host_checks(raw: dict[str, Any], plan: Plan | None) -> list[dict[str, Any]]:
    """Every check for a host from the runner's observations."""
    out: list[dict[str, Any]] = []
    for name, rec in (raw.get("users") or {}).items():
        out += user_checks(name, rec, plan)
    if raw.get("wear") is not None:
        out.append(wear.check_wear(raw["wear"]))
    if raw.get("wsl") is not None:
        out += wsl.host_checks(raw["wsl"], plan)
        for name, rec in (raw.get("users") or {}).items():
            out += wsl.user_checks(name, rec)
    return out
