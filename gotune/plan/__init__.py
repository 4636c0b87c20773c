"""The planner: a pure function from one host's Facts and Settings to its whole Plan.

``make_plan`` reads no files and runs nothing, so every rule is testable from a
facts document alone, and ``gotune plan --facts FILE`` prints exactly the plan
apply would carry out on that host. One module per component, called in the
order the components depend on each other: ``toolchain``; ``caches`` (GOMODCACHE,
GOCACHE, GOTMPDIR per developer user); ``numa`` (follows GOCACHE's device);
``mirror`` (follows the first user's GOMODCACHE); ``buildcache`` (beside the mirror;
its helper follows the toolchain); ``wear``; ``wsl`` (a WSL2 distro's wsl.conf,
.wslconfig, inotify and GOPATH); and ``goenv``, which collects what the
others want in each user's GOENV file.
"""

from __future__ import annotations

from gotune.facts.model import Facts
from gotune.plan.buildcache import plan_buildcache
from gotune.plan.caches import plan_user_caches
from gotune.plan.goenv import plan_goenv
from gotune.plan.mirror import plan_mirror
from gotune.plan.model import Decision, Plan
from gotune.plan.numa import plan_numa
from gotune.plan.toolchain import plan_toolchain
from gotune.plan.wear import plan_wear
from gotune.plan.wsl import plan_wsl
from gotune.settings import Settings

__all__ = ["Decision", "Plan", "make_plan"]

# Storage classes whose speed the facts cannot tell: a cache left there is reported.
UNKNOWN_MEDIA = ("virtual", "unknown")


def make_plan(facts: Facts, settings: Settings) -> Plan:
    """Decide the toolchain, each developer user's caches and GOENV, NUMA, mirror, build cache,
    wear and WSL.

    + facts: the host's complete facts (hardware, every developer user, gotune's own state)
    + settings: the host's validated settings
    """
    toolchain, warnings = plan_toolchain(facts, settings)
    plan = Plan(toolchain=toolchain, warnings=warnings)
    # The developer users are the ones the facts were gathered for (gotune_users).
    users = facts.users
    if not users:
        plan.warnings.append("no developer user: set gotune_users to place Go caches")
    for name, uf in users.items():
        caches, found = plan_user_caches(facts, uf, settings, len(users))
        plan.warnings += found
        if caches is not None:
            plan.caches[name] = caches
    first = next(iter(plan.caches.values()), None)
    plan.numa = plan_numa(facts, first.gocache if first else None)
    plan.mirror = plan_mirror(facts, settings, first.gomodcache if first else None)
    plan.buildcache = plan_buildcache(
        facts, settings, first.gomodcache if first else None, toolchain
    )
    plan.wear = plan_wear(facts, settings)
    plan.wsl, found = plan_wsl(facts, settings)
    plan.warnings += found
    gopaths = plan.wsl.gopath if plan.wsl else {}
    helper = plan.buildcache.helper if plan.buildcache else None
    for name, caches in plan.caches.items():
        goenv, found = plan_goenv(users[name], caches, plan.mirror, gopaths.get(name), helper)
        plan.warnings += found
        if goenv is not None:
            plan.goenv[name] = goenv
    for caches in plan.caches.values():
        for d in (caches.gomodcache, caches.gocache):
            if d.medium in UNKNOWN_MEDIA and not d.change:
                plan.warnings.append(f"{d.user}: {d.key} is on {d.medium} storage; its speed "
                                     "is unknown")  # fmt: skip
    return plan
