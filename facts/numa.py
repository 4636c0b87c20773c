"""NUMA facts: nodes with their CPUs, memory, distances and memory tiers.

Sources: /sys/devices/system/node/nodeN/{cpulist,cpumap,distance,meminfo} and
/sys/devices/virtual/memory_tiering/memory_tierN/nodelist. A kernel without
NUMA (no node directories) gives one node 0 holding every CPU and all memory.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from pyinfra.api import FactBase

from gotune.facts.collect import Dump
from gotune.facts.model import Numa, NumaNode
from gotune.facts.state import NUMA_RECORD, parse_measured
from gotune.facts.sysfs import meminfo_bytes, parse_cpulist, parse_cpumask, parse_int

NODE_SYS = "/sys/devices/system/node"
TIER_SYS = "/sys/devices/virtual/memory_tiering"

# The distance Linux reports from a node to itself when firmware gives none (ACPI SLIT).
LOCAL_DISTANCE = 10


def parse_numa(dump: Dump, online: list[int], total_bytes: int | None, unknown: list[str]) -> Numa:
    """NUMA nodes from sysfs; the online CPU list bounds each node's CPUs."""
    ids = sorted(int(n[4:]) for n in dump.children(NODE_SYS) if re.fullmatch(r"node\d{1,5}", n))
    if not ids:
        return Numa(
            nodes=[
                NumaNode(
                    id=0, cpus=list(online), memory_bytes=total_bytes, distances=[LOCAL_DISTANCE]
                )
            ],
            source="none",
        )
    on = set(online)
    taken: set[int] = set()
    nodes = []
    for node_id in ids:
        base = f"{NODE_SYS}/node{node_id}"
        cpus = parse_cpulist(dump.value(f"{base}/cpulist"))
        if cpus is None:
            cpus = parse_cpumask(dump.value(f"{base}/cpumap"))
        if cpus is None:
            unknown.append(f"numa.nodes[{node_id}].cpus: no cpulist")
            cpus = []
        memory = meminfo_bytes(dump.text(f"{base}/meminfo"), "MemTotal")
        if memory is None:
            unknown.append(f"numa.nodes[{node_id}].memory_bytes: no meminfo")
        distances = [
            d
            for t in (dump.value(f"{base}/distance") or "").split()
            if (d := parse_int(t)) is not None
        ]
        mine = [c for c in cpus if c in on] if on else cpus
        # A CPU lives on one node; a tree where two nodes claim it is broken, and
        # the first node keeps it rather than counting the CPU twice.
        if taken.intersection(mine):
            unknown.append(f"numa.nodes[{node_id}].cpus: overlap another node's, those left out")
            mine = [c for c in mine if c not in taken]
        taken.update(mine)
        nodes.append(
            NumaNode(
                id=node_id,
                cpus=mine,
                memory_bytes=memory,
                distances=distances,
                memory_only=not mine and bool(memory),
            )
        )
    _tiers(dump, nodes)
    return Numa(nodes=nodes, source="sysfs")


def _tiers(dump: Dump, nodes: list[NumaNode]) -> None:
    by_id = {n.id: n for n in nodes}
    for name in dump.children(TIER_SYS):
        m = re.fullmatch(r"memory_tier(\d{1,6})", name)
        if not m:
            continue
        listed = parse_cpulist(
            dump.value(f"{TIER_SYS}/{name}/nodelist") or dump.value(f"{TIER_SYS}/{name}/nodes")
        )
        for node_id in listed or []:
            if node_id in by_id:
                by_id[node_id].tier = int(m.group(1))


class NumaMeasured(FactBase[dict[str, dict[str, Any]]]):
    """
    The NUMA wrappers' measured figures per tool (``/var/lib/gotune/numa.json``),
    ``{}`` when nothing was measured. The planner reads the same record from the
    collector (``facts.gotune.numa_measured``); operations read it here at run time.

    .. code:: python

        {"go": {"numactl_args": ["--interleave=0,1"], "plain_median_s": 0.41,
                "wrapped_median_s": 0.42, "gain": -0.02, "threshold": 0.03,
                "keep": False, "pairs": 7, "wrapper_sha256": "9f2c...", ...}}
    """

    default = dict

    def command(self, path: str = NUMA_RECORD) -> str:
        return f"! test -f {shlex.quote(path)} || cat {shlex.quote(path)}"

    def process(self, output: list[str]) -> dict[str, dict[str, Any]]:
        return parse_measured("\n".join(output))
