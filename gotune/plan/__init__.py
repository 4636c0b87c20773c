"""The planner: a pure function from Facts and Settings to a Plan.

``make_plan`` reads no files and runs nothing, so every rule is testable from a
facts document alone (``gotune plan --facts FILE``). One module per subject:
``caches`` (GOCACHE, GOMODCACHE, GOTMPDIR), ``toolchain`` (the Go install),
``numa`` and ``mirror`` (the local module mirror's cache and node).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gotune.facts.model import Facts
from gotune.plan.caches import plan_user_caches
from gotune.plan.mirror import plan_mirror
from gotune.plan.model import Decision, Plan
from gotune.plan.numa import plan_numa
from gotune.plan.toolchain import plan_toolchain
from gotune.settings import Settings

__all__ = ["Decision", "Plan", "make_plan"]


def make_plan(
    facts: Facts,
    settings: Settings,
    users: Mapping[str, Facts] | None = None,
    numa_measured: Mapping[str, Mapping[str, Any]] | None = None,
) -> Plan:
    """Decide the toolchain and each developer user's caches.

    + facts: the host's facts (hardware, mounts, platform)
    + settings: the host's validated settings
    + users: facts gathered for each developer user (home, ``go env``); default: the
      user ``facts`` was gathered for, when the facts name one
    + numa_measured: the host's measured NUMA wrapper figures (``facts.numa_measured``)
    """
    if users is None:
        users = {facts.user.name: facts} if facts.user.name else {}
    plan = Plan()
    first = next(iter(users.values()), facts)
    plan.decisions.append(plan_toolchain(first, settings))
    if not users:
        plan.warnings.append("no developer user: set gotune_users to place Go caches")
    for name, uf in users.items():
        decisions, warnings = plan_user_caches(facts, uf, name, settings, len(users))
        plan.decisions.extend(decisions)
        plan.warnings.extend(warnings)
    first_user = next(iter(users), None)
    plan.decisions.extend(plan_numa(first, plan.find("GOCACHE", first_user), numa_measured))
    plan.decisions.extend(plan_mirror(first, settings, plan.find("GOMODCACHE", first_user)))
    for d in plan.decisions:
        if (
            d.key in ("GOCACHE", "GOMODCACHE")
            and d.medium in ("virtual", "unknown")
            and not d.change
        ):
            plan.warnings.append(
                f"{d.user}: {d.key} is on {d.medium} storage; its speed is unknown"
            )
    return plan
