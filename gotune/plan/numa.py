"""NUMA: which node the Go tools and the mirror run on, and which numactl wrappers to try.

Pure rules over ``facts.model`` (no I/O). ``operations/numa.py`` writes the wrappers
(``templates/numa-wrapper.sh.j2``) into ``WRAPPER_DIR``, measures each against the plain
tool (``gotune/numa_measure.py``) and keeps only those that beat the noise; the figures
come back here as ``measured`` so the plan shows why a wrapper stays or went.

The rules:

- One node with CPUs (laptops, hybrid desktops, GB10): no wrappers, binding cannot help.
- The node: the one whose CPUs are local to the device holding GOCACHE (its
  ``numa_node``); a device attached to a CPU-less node counts for the CPU node nearest
  to it. When GOCACHE is on tmpfs or its device has no locality, the node with the most
  memory, then the most CPUs.
- Memory is only ever bound to DRAM: a node with CPUs and memory in the lowest memory
  tier. Memory-only nodes (CXL, HBM, GPU memory, NVDIMM) are never named in a policy;
  a node whose CPUs have no memory of their own gets CPU binding only, and the kernel's
  local allocation already takes the nearest memory.
- gopls (long-lived, keeps type-checked packages in memory): ``--cpunodebind=N
  --preferred=N``. ``--preferred`` spills to other nodes when N is full, where
  ``--membind`` would get the OOM killer.
- go (builds): never bound to one node — GOMAXPROCS follows the CPU affinity, so a
  build would lose the other nodes' cores. The candidate is ``--interleave`` over the
  DRAM nodes; it is kept only if the measurement shows a gain.
- dlv: long-lived like gopls, but a debugger's time goes to ptrace stops in the
  debuggee; no benchmark here can show a gain, and unmeasured wrappers are not kept.
- The mirror: on the node local to the NIC it serves (``mirror_decision``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gotune.agent.paths import NUMA_RECORD, WRAPPER_DIR
from gotune.facts.model import Facts
from gotune.facts.model import NumaNode as Node
from gotune.plan.model import Decision, MirrorBinding, NumaNode, NumaPlan, NumaWrapper, TmpfsCache

# Measured figures written by apply on the host, read back into the plan.
MEASURED_PATH = NUMA_RECORD
# The tools gotune may wrap, in the order the plan lists them.
TOOLS = ("gopls", "go", "dlv")
# Where IDEs look for gopls before PATH; said in the gopls decision so users can point
# their editor at the wrapper (vscode-go: alternateTools, then GOBIN, GOPATH/bin, PATH).
IDE_NOTE = (
    "editors that search PATH (vim-go, eglot, lsp-mode, Helix, Zed) get the wrapper; "
    "VS Code's Go extension looks in GOBIN and GOPATH/bin first — point "
    f'"go.alternateTools" {{"gopls": "{WRAPPER_DIR}/gopls"}} at it'
)

_PARTITION = re.compile(r"^p?[0-9]+$")


@dataclass(frozen=True)
class Topology:
    """The nodes that matter for binding, derived from ``facts.numa``."""

    cpu_nodes: list[Node]  # nodes with CPUs
    dram_nodes: list[Node]  # nodes with CPUs and memory in the lowest tier
    memory_only: list[Node]  # memory, no CPUs (CXL, HBM, GPU memory, NVDIMM)

    def node(self, node_id: int) -> Node | None:
        return next((n for n in self.cpu_nodes if n.id == node_id), None)

    def has_dram(self, node_id: int) -> bool:
        return any(n.id == node_id for n in self.dram_nodes)


def topology(facts: Facts) -> Topology:
    nodes = sorted(facts.numa.nodes, key=lambda n: n.id)
    # A node whose CPUs are all outside this host's cpuset cannot be bound to.
    allowed = set(facts.cpu.allowed)
    cpu_nodes = [
        n
        for n in nodes
        if n.cpus and not n.memory_only and (not allowed or allowed.intersection(n.cpus))
    ]
    tiers = [n.tier for n in cpu_nodes if n.tier is not None]
    dram_tier = min(tiers) if tiers else None
    dram = [
        n
        for n in cpu_nodes
        if (n.memory_bytes is None or n.memory_bytes > 0)
        and (dram_tier is None or n.tier is None or n.tier == dram_tier)
    ]
    memory_only = [n for n in nodes if not n.cpus and (n.memory_bytes or 0) > 0]
    return Topology(cpu_nodes, dram, memory_only)


def cpu_list(cpus: list[int]) -> str:
    """0,1,2,3,8 -> '0-3,8' (the sysfs/numactl form)."""
    out: list[str] = []
    for c in sorted(set(cpus)):
        if out and "-" in out[-1] and int(out[-1].split("-")[1]) == c - 1:
            out[-1] = f"{out[-1].split('-')[0]}-{c}"
        elif out and "-" not in out[-1] and int(out[-1]) == c - 1:
            out[-1] = f"{out[-1]}-{c}"
        else:
            out.append(str(c))
    return ",".join(out)


def _gib(n: int | None) -> str:
    return "unknown memory" if n is None else f"{n / 1024**3:.0f} GiB"


def _distance(facts: Facts, a: int, b: int) -> int:
    """SLIT distance from node a to node b (10 = local); unknown counts as far."""
    ids = [n.id for n in sorted(facts.numa.nodes, key=lambda n: n.id)]
    src = next((n for n in facts.numa.nodes if n.id == a), None)
    if src is None or b not in ids or len(src.distances) != len(ids):
        return 255
    return src.distances[ids.index(b)]


def device_node(facts: Facts, device: str | None) -> tuple[str | None, int | None]:
    """The block device (disk) behind a mount's device path and its NUMA node.

    ``/dev/nvme0n1p2`` -> (``nvme0n1``, 1); partitions map to their disk.
    """
    if not device:
        return None, None
    name = device.rsplit("/", 1)[-1]
    best = None
    for d in facts.storage.devices:
        if d.name == name:
            return d.name, d.numa_node
        rest = name[len(d.name) :]
        if (
            name.startswith(d.name)
            and _PARTITION.match(rest)
            and (best is None or len(d.name) > len(best.name))
        ):
            best = d
    return (best.name, best.numa_node) if best else (name, None)


@dataclass(frozen=True)
class NodeChoice:
    node: Node
    why: str
    facts_used: list[str]


def choose_node(facts: Facts, topo: Topology, gocache: Decision | None = None) -> NodeChoice:
    """The node for the long-lived tools: local to GOCACHE's storage, else the biggest."""
    used: list[str] = []
    first = next(iter(facts.users.values()), None)
    place = first.paths.get("gocache") if first else None
    device = place.device if place else None
    why_none = "GOCACHE's location is unknown"
    if isinstance(gocache, TmpfsCache):
        device, why_none = None, "GOCACHE goes to tmpfs (RAM, no device)"
        used.append("plan.GOCACHE.medium=tmpfs")
    elif gocache is not None and gocache.value:
        mount = _mount_device(facts, gocache.value)
        if mount:
            device = mount
    disk, node_id = device_node(facts, device)
    if device:
        used.append(f"storage.gocache.device={device}")
        used.append(
            f"storage.devices[{disk}].numa_node={node_id if node_id is not None else 'unknown'}"
        )
        why_none = f"GOCACHE's device {disk} reports no NUMA node"
    if node_id is not None:
        local = topo.node(node_id)
        if local is not None:
            return NodeChoice(
                local, f"node {local.id} is local to {disk}, which holds GOCACHE", used
            )
        near = min(topo.cpu_nodes, key=lambda n: (_distance(facts, node_id, n.id), n.id))
        used.append(f"numa.nodes[{node_id}].distances")
        return NodeChoice(
            near,
            f"{disk} hangs off CPU-less node {node_id}; node {near.id} is the nearest with CPUs "
            f"(distance {_distance(facts, node_id, near.id)})",
            used,
        )
    biggest = max(topo.cpu_nodes, key=lambda n: (n.memory_bytes or 0, len(n.cpus), -n.id))
    if not biggest.memory_bytes:
        return NodeChoice(biggest, f"{why_none}: node {biggest.id} has the most CPUs", used)
    return NodeChoice(
        biggest,
        f"{why_none}: node {biggest.id} has the most memory ({_gib(biggest.memory_bytes)})",
        used,
    )


def _mount_device(facts: Facts, path: str) -> str | None:
    best = None
    for m in facts.storage.mounts:
        mp = m.path.rstrip("/") or "/"
        if (path == mp or path.startswith(mp + "/") or mp == "/") and (
            best is None or len(mp) > len(best.path)
        ):
            best = m
    return best.device if best else None


def local_args(node: Node, topo: Topology) -> list[str]:
    """Run on the node's CPUs; prefer its memory only when it is DRAM."""
    args = [f"--cpunodebind={node.id}"]
    if topo.has_dram(node.id):
        args.append(f"--preferred={node.id}")
    return args


def _measured_text(m: Mapping[str, Any]) -> str:
    """'wrapped 1.820 s vs plain 1.950 s (median of 7 interleaved pairs): 6.7% faster (...)'."""
    gain = float(m.get("gain", 0.0))
    return (
        f"wrapped {float(m.get('wrapped_median_s', 0)):.3f} s vs plain "
        f"{float(m.get('plain_median_s', 0)):.3f} s "
        f"(median of {m.get('pairs', '?')} interleaved pairs): "
        f"{abs(gain) * 100:.1f}% {'faster' if gain >= 0 else 'slower'}, verify's verdict "
        f"'{m.get('verdict', 'unknown')}' (a wrapper stays only when the ranges do not overlap "
        f"and the medians are more than {float(m.get('threshold', 0)) * 100:.0f}% apart)"
    )


def _tool_decision(
    tool: str,
    args: list[str] | None,
    why: str,
    used: list[str],
    nodes: list[int],
    real: str | None,
    measured: Mapping[str, Any] | None,
    goroot: str | None = None,
) -> NumaWrapper:
    common: dict[str, Any] = {
        "key": f"numa.{tool}", "tool": tool, "wrapper": f"{WRAPPER_DIR}/{tool}",
        "numactl_args": list(args or []), "nodes": nodes, "real": real, "goroot": goroot,
        "why": why, "measured": dict(measured) if measured else None,
    }  # fmt: skip
    if args is None:
        return NumaWrapper(value=None, medium="none", reason=why, facts_used=used, **common)
    value = " ".join(args)
    if measured and list(measured.get("numactl_args", [])) == args:
        used = [*used, f"measured:{MEASURED_PATH}"]
        if measured.get("keep"):
            return NumaWrapper(
                value=value, medium="numactl", reason=f"{why}; kept: {_measured_text(measured)}",
                facts_used=used, current=value, **common,
            )  # fmt: skip
        failed = measured.get("error")
        verdict = f"the workload failed ({failed})" if failed else _measured_text(measured)
        return NumaWrapper(
            value=None, medium="none", reason=f"tried numactl {value} ({why}); removed: {verdict}",
            facts_used=used, **common,
        )  # fmt: skip
    return NumaWrapper(
        value=value, medium="numactl",
        reason=f"{why}; apply measures it against the plain {tool} (when {tool} and numactl are "
        "installed) and keeps it only if it beats the noise",
        facts_used=used, change=True, **common,
    )  # fmt: skip


def _single_node(topo: Topology, used: list[str]) -> NumaPlan:
    """One node with CPUs: nothing to bind, no wrappers."""
    only = topo.cpu_nodes[0].id if topo.cpu_nodes else 0
    extra = (
        f"; memory-only node(s) {', '.join(str(n.id) for n in topo.memory_only)} are never bound"
        if topo.memory_only
        else ""
    )
    return NumaPlan(
        NumaNode(
            key="numa", value=None, medium="none",
            reason=f"one NUMA node with CPUs (node {only}): every CPU and all DRAM are "
            f"equally near, so numactl wrappers cannot help and none are written{extra}",
            facts_used=used,
        )
    )  # fmt: skip


@dataclass(frozen=True)
class ToolContext:
    """What every tool rule reads: the chosen node, the topology, where the tools are."""

    node: Node
    topo: Topology
    used: list[str]
    measured: Mapping[str, Mapping[str, Any]]
    goroot: str | None
    gobin: str | None


def _gopls(c: ToolContext) -> NumaWrapper:
    """gopls: long-lived, keeps the workspace's packages in memory: near its node."""
    node = c.node
    memory = (
        f"prefers node {node.id}'s memory "
        "(--preferred spills over when it is full; --membind would OOM)"
        if c.topo.has_dram(node.id)
        else "memory left to the kernel (node has no DRAM)"
    )
    why = (
        "gopls lives as long as the editor and keeps type-checked packages in memory: "
        f"it runs on node {node.id}'s CPUs and {memory}; {IDE_NOTE}"
    )
    real = f"{c.gobin}/gopls" if c.gobin else None
    return _tool_decision("gopls", local_args(node, c.topo), why, c.used, [node.id], real,
                          c.measured.get("gopls"), c.goroot)  # fmt: skip


def _go(c: ToolContext) -> NumaWrapper:
    """go: builds use every CPU, never bound to one node; memory interleaved is the candidate."""
    dram_ids = [n.id for n in c.topo.dram_nodes]
    never = "go builds are never bound to one node (GOMAXPROCS follows the CPU affinity"
    args: list[str] | None = None
    if len(dram_ids) >= 2:
        args = [f"--interleave={','.join(str(i) for i in dram_ids)}"]
        total = sum(len(n.cpus) for n in c.topo.cpu_nodes)
        why = (f"{never}: node {c.node.id} alone has {len(c.node.cpus)} of {total} CPUs); "
               f"the candidate spreads memory over the DRAM nodes {dram_ids}")  # fmt: skip
    else:
        why = (f"{never}), and with {len(dram_ids)} DRAM node(s) there is nothing to "
               "interleave: no wrapper")  # fmt: skip
    real = f"{c.goroot}/bin/go" if c.goroot else None
    return _tool_decision("go", args, why, c.used, dram_ids, real, c.measured.get("go"),
                          c.goroot)  # fmt: skip


def _dlv(c: ToolContext) -> NumaWrapper:
    """dlv: the policy gopls gets, but nothing can show it helps, so it is not written."""
    why = (
        f"dlv would run like gopls (numactl {' '.join(local_args(c.node, c.topo))}), but a "
        "debugger's time goes to ptrace stops in the debuggee and no benchmark here can show "
        "a gain; unmeasured wrappers are not kept"
    )
    real = f"{c.gobin}/dlv" if c.gobin else None
    return _tool_decision("dlv", None, why, c.used, [c.node.id], real, None)


def plan_numa(facts: Facts, gocache: Decision | None = None) -> NumaPlan:
    """The NUMA decisions for one host: the node, then one decision per tool.

    + facts: the host's facts (numa nodes, storage devices, GOCACHE placement, the first
      developer user's go env, the wrappers' measured figures in ``facts.gotune``)
    + gocache: the plan's GOCACHE decision, when it moves the cache (tmpfs or another disk)
    """
    topo = topology(facts)
    node_used = [
        f"numa.nodes={len(facts.numa.nodes)}",
        f"numa.cpu_nodes={[n.id for n in topo.cpu_nodes]}",
    ]
    if topo.memory_only:
        node_used.append(f"numa.memory_only={[n.id for n in topo.memory_only]}")
    if len(topo.cpu_nodes) <= 1:
        return _single_node(topo, node_used)
    choice = choose_node(facts, topo, gocache)
    node = choice.node
    used = node_used + choice.facts_used
    mem = (
        f"{_gib(node.memory_bytes)} DRAM"
        if topo.has_dram(node.id)
        else "no memory of its own (the kernel allocates from the nearest memory node)"
    )
    chosen = NumaNode(
        key="numa", value=str(node.id), medium=f"node {node.id}",
        reason=f"{choice.why}; CPUs {cpu_list(node.cpus)}, {mem}", facts_used=used,
        node=node.id, dram_nodes=[n.id for n in topo.dram_nodes],
    )  # fmt: skip
    first = next(iter(facts.users.values()), None)
    go = (first.go if first else facts.go) or {}
    gopath = go.get("GOPATH", "").split(":")[0]
    context = ToolContext(
        node, topo, used, facts.gotune.numa_measured, go.get("GOROOT"),
        go.get("GOBIN") or (f"{gopath}/bin" if gopath else None),
    )  # fmt: skip
    return NumaPlan(chosen, [rule(context) for rule in (_gopls, _go, _dlv)])


def mirror_decision(facts: Facts, nic: str | None = None) -> MirrorBinding:
    """Where the module mirror runs: the CPUs (and DRAM) local to the NIC it serves.

    + nic: the interface clients reach the mirror through; default: the fastest up,
      non-virtual NIC. A mirror on loopback only serves this host: no binding.

    ``numactl_args`` is the prefix for the service's command (empty: none).
    Like the tool wrappers, the service must fall back to running unbound when binding
    fails — render ``templates/numa-wrapper.sh.j2`` for it (``operations.numa``).
    """
    topo = topology(facts)
    used = [f"numa.cpu_nodes={[n.id for n in topo.cpu_nodes]}"]

    def none(why: str) -> MirrorBinding:
        return MirrorBinding(key="numa.mirror", value=None, medium="none", reason=why,
                             facts_used=used)  # fmt: skip

    if len(topo.cpu_nodes) <= 1:
        return none("one NUMA node with CPUs: the mirror runs unbound")
    if nic == "lo":
        return none("the mirror serves loopback only: no NIC to be near")
    nics = [n for n in facts.nics if not n.virtual]
    chosen = (
        next((n for n in facts.nics if n.name == nic), None)
        if nic
        else max((n for n in nics if n.up), key=lambda n: (n.speed_mbps or 0, n.name), default=None)
    )
    if chosen is None:
        return none(
            f"NIC {nic} not found" if nic else "no physical NIC is up: the mirror runs unbound"
        )
    used.append(f"nics[{chosen.name}].numa_node={chosen.numa_node}")
    node = topo.node(chosen.numa_node) if chosen.numa_node is not None else None
    if node is None:
        return none(f"{chosen.name} reports no NUMA node with CPUs: the mirror runs unbound")
    args = local_args(node, topo)
    return MirrorBinding(
        key="numa.mirror", value=" ".join(args), medium=f"node {node.id}",
        reason=f"the mirror serves {chosen.name}, which is attached to node {node.id}: its CPUs "
        "handle the NIC's interrupts and its memory holds the socket buffers",
        facts_used=used, numactl_args=args, nodes=[node.id], nic=chosen.name,
    )  # fmt: skip
