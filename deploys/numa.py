"""The numa component: numactl wrappers for the Go tools, kept only where they help.

Save → apply → verify → undo, side by side:

- plan: ``gotune/plan/numa.py`` (the node local to GOCACHE's storage, a policy per tool;
  one node: no wrappers)
- apply: here, with ``operations/numa.py`` — each wrapper (``templates/numa-wrapper.sh.j2``)
  is written to ``/usr/local/lib/gotune/bin``, measured against the plain tool by the
  agent (``gotune.agent.numa_measure``) and deleted unless it beats the noise; the
  figures go to ``/var/lib/gotune/numa.json``, which the next plan reads
- verify: ``gotune/verify/checks/numa.py`` (each kept wrapper runs as the user)
- undo: every wrapper, the PATH snippets and the record are recorded first
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from gotune.agent.paths import AGENT_DIR
from gotune.deploys.agent import install_agent
from gotune.operations import numa, state
from gotune.plan.model import HostPlan


@deploy("gotune NUMA wrappers")
def deploy_numa(hp: HostPlan) -> None:
    """Write, measure and keep (or drop) the planned wrappers; remove unwanted ones."""
    tools = hp.plan.numa.tools if hp.plan.numa else []
    if not tools:
        host.noop("one NUMA node: no wrappers")
        return
    user = next(iter(hp.plan.caches), None)  # measurements run as the first developer
    wanted = [d for d in tools if d.value is not None]
    if wanted and user is not None:  # the agent measures the wrappers
        state.record_created(name=f"Record {AGENT_DIR} for undo", path=AGENT_DIR)
        install_agent()
        numa.search_path(
            name="numa: wrapper directory first on PATH", systemd=hp.facts.platform.systemd
        )
    for d in tools:
        if d.value is None or user is None:
            numa.absent(name=f"numa: no {d.tool} wrapper", tool=d.tool)
            continue
        numa.wrapper(
            name=f"numa: {d.tool} wrapper (numactl {d.value}), kept only if it helps",
            tool=d.tool, numactl_args=list(d.numactl_args), nodes=list(d.nodes),
            reason=d.why or d.reason, user=user, real=d.real, goroot=d.goroot,
        )  # fmt: skip
