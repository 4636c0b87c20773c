"""Every connected host's facts and plan, gathered in parallel: what plan, apply,
undo and rollout start from.

One collector round trip per host (``gotune.facts.gather``), then the pure
planner on the control machine. Nothing here changes a host.
"""

from __future__ import annotations

from typing import Any

from gotune.errors import GotuneError
from gotune.facts.gather import COLLECT_TIMEOUT_S, gather
from gotune.inventory import Connection, describe_error
from gotune.plan import make_plan
from gotune.plan.model import HostPlan
from gotune.settings import Settings


def host_plans(
    conn: Connection, settings: dict[str, Settings], strict: bool = True
) -> tuple[dict[str, HostPlan], dict[str, str]]:
    """(host name -> HostPlan, host name -> why it has none) for the connected hosts.

    + conn: the connected inventory
    + settings: every host's validated settings (``validate_inventory``)
    + strict: bad input on one host (a user that does not exist) stops all; False
      makes it that host's reason, as an unreachable host's
    """

    def plan_one(host: Any) -> HostPlan:
        s = settings[host.name]
        facts = gather(s)
        return HostPlan(s, facts, make_plan(facts, s))

    plans, errors = conn.each(plan_one, timeout=COLLECT_TIMEOUT_S + 30)
    for exc in errors.values():
        if strict and isinstance(exc, GotuneError):  # bad input (a missing user): stop all
            raise exc
    return plans, {name: describe_error(exc) for name, exc in errors.items()}


def not_root(plans: dict[str, HostPlan]) -> dict[str, str]:
    """Hosts where the collector did not run as root (uid from ``id -u``, never $USER)."""
    return {
        name: f"apply needs root there (connected as uid {hp.facts.connected_uid}): run gotune "
        "as root (or with sudo), or give the host _sudo=True"
        for name, hp in plans.items()
        if hp.facts.connected_uid != 0
    }
