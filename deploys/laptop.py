"""The main deploy: tune a host for Go development, one component after another.

Run it with ``gotune apply [INVENTORY]`` (which shows the plan and asks first) or
with plain pyinfra: ``pyinfra inventories/fleet.py deploys/laptop.py``. Settings
come from host and group data (``gotune_*``, see gotune/settings.py); pyinfra
prepares every host before it changes any, so a bad setting on one host stops
the run before anything changes anywhere.

Each component is one name through every layer (``facts/<c>.py``,
``gotune/plan/<c>.py``, ``operations/<c>.py``, ``deploys/<c>.py``, its verify checks,
``templates/<c>-*.j2``; docs/architecture.md). ``COMPONENTS`` is their order:
wsl first on a WSL2 distro (``[boot] systemd=true`` is in place before the services
are installed; systemd itself starts only after ``wsl --shutdown``), the toolchain
before the caches (a new go must exist before caches move), the wear check before
the mirror and the build cache (they read its state), the build cache's helper before
GOENV names it in GOCACHEPROG, GOENV last but for the helper's measurement (it times
go as GOENV has it, and takes an unhelpful helper out again) — but for the caches'
own keys, which the caches component writes as soon as they are placed, so that a
later component's failure never leaves go pointing at a moved cache's old place. Before them, the
developer users' setup as it is goes into verify's baseline (the "before" that verify
compares with); after them, the plan that was carried out is stored on the host for
verify and rollout.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from pyinfra import host
from pyinfra.api import deploy

from gotune.agent.paths import AGENT_DIR, PLAN_PATH, VERIFY_BASELINE, VERIFY_DIR
from gotune.deploys.agent import install_agent
from gotune.deploys.buildcache import deploy_buildcache, measure_buildcache
from gotune.deploys.caches import deploy_caches
from gotune.deploys.goenv import deploy_goenv
from gotune.deploys.mirror import deploy_mirror
from gotune.deploys.numa import deploy_numa
from gotune.deploys.toolchain import deploy_toolchain
from gotune.deploys.wear import deploy_wear
from gotune.deploys.wsl import deploy_wsl
from gotune.operations import state, verify
from gotune.plan.model import HostPlan


class ComponentDeploy(Protocol):
    """A component's deploy: ``deploys/<component>.py``'s ``@deploy`` function."""

    def __call__(self, *, hp: HostPlan) -> Any: ...


COMPONENTS: tuple[ComponentDeploy, ...] = (
    deploy_wsl,
    deploy_toolchain,
    deploy_caches,
    deploy_numa,
    deploy_wear,
    deploy_mirror,
    deploy_buildcache,
    deploy_goenv,
    measure_buildcache,
)


def plan_record(hp: HostPlan) -> str:
    """The stored plan's text: the JSON ``gotune plan --json`` prints for the host."""
    return json.dumps(hp.plan.to_dict(), indent=1, sort_keys=True) + "\n"


def record_baseline(hp: HostPlan) -> None:
    """verify's "before": each developer user's Go setup as it is, recorded by the agent
    before any component changes the host (``operations/verify.py``)."""
    users = list(hp.settings.users)
    if not users:
        host.noop("no developer users: no baseline to record")
        return
    state.record_created(name=f"Record {AGENT_DIR} for undo", path=AGENT_DIR)
    install_agent()
    verify.baseline(
        name=f"Record {', '.join(users)}'s Go setup before any change ({VERIFY_BASELINE})",
        users=users,
    )  # fmt: skip


@deploy("gotune laptop")
def tune(hp: HostPlan) -> None:
    """Record the users' setup as it is, make the host match its plan, record the plan."""
    # verify keeps its history and baseline there: undo removes it with the rest.
    state.record_created(
        name="Record gotune's verify directory for undo", path=VERIFY_DIR, ancestors=False
    )
    record_baseline(hp)
    for component in COMPONENTS:
        component(hp=hp)
    # A plan with nothing to change was carried out before: its record stays as it is,
    # so a second apply changes nothing.
    if hp.plan.changes or hp.facts.gotune.plan is None:
        state.file(
            name=f"Record the plan carried out ({PLAN_PATH})", path=PLAN_PATH,
            content=plan_record(hp), mode=0o644,
        )  # fmt: skip
    else:
        host.noop(f"{PLAN_PATH}: nothing planned to change")


# `pyinfra INVENTORY deploys/laptop.py` executes this file (not as an import).
if __name__ != "gotune.deploys.laptop":
    from gotune.deploys.host import current_host_plan

    tune(hp=current_host_plan())
