"""Every recorded machine in tests/fixtures/hwloc reads as hwloc itself reads it.

The oracle is hwloc's own view of the same tree: ``lstopo-no-graphics --if fsroot
--input DIR --of xml --disallowed`` (Debian's hwloc-nox), parsed here. The trees
are unpacked and lstopo run once per session; the collector runs with the real
/bin/sh over each tree, exactly as ``gotune facts --sysroot DIR`` does.
"""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from gotune.facts.model import Facts
from tests.recorded import NAMES, RecordedTrees

LSTOPO = shutil.which("lstopo-no-graphics")


@dataclass
class Recorded:
    name: str
    root: Path
    facts: Facts
    hwloc: ET.Element | None


def _bits(mask: str | None) -> set[int]:
    """hwloc's cpuset text: 32-bit hex words, most significant first."""
    if not mask:
        return set()
    value = 0
    for word in mask.split(","):
        value = (value << 32) | int(word.removeprefix("0x") or "0", 16)
    return {i for i in range(value.bit_length()) if value >> i & 1}


@pytest.fixture(scope="session")
def recorded(recorded_trees: RecordedTrees) -> dict[str, Recorded]:
    out: dict[str, Recorded] = {}
    for name in NAMES:
        root = recorded_trees.root(name)
        xml = None
        if LSTOPO:
            run = subprocess.run(
                [LSTOPO, "--if", "fsroot", "--input", str(root), "--of", "xml", "--disallowed"],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            xml = ET.fromstring(run.stdout)
        out[name] = Recorded(name, root, recorded_trees.facts(name), xml)
    return out


def _objects(xml: ET.Element, kind: str) -> list[ET.Element]:
    return [o for o in xml.iter("object") if o.get("type") == kind]


def test_every_recorded_tree_is_covered() -> None:
    assert len(NAMES) >= 21


@pytest.mark.parametrize("name", NAMES)
def test_recorded_tree_parses_with_cpus_and_memory(
    recorded: dict[str, Recorded], name: str
) -> None:
    facts = recorded[name].facts
    assert facts.cpu.threads and facts.cpu.online
    assert facts.numa.nodes
    node_cpus = [c for n in facts.numa.nodes for c in n.cpus]
    assert len(node_cpus) == len(set(node_cpus)), "a CPU on two nodes"
    assert set(node_cpus) <= set(facts.cpu.online)
    # The document survives its own JSON round trip.
    assert Facts.from_dict(facts.to_dict()) == facts


needs_lstopo = pytest.mark.skipif(
    LSTOPO is None, reason="lstopo-no-graphics (hwloc-nox) not installed"
)


@needs_lstopo
@pytest.mark.parametrize("name", NAMES)
def test_topology_counts_agree_with_hwloc(recorded: dict[str, Recorded], name: str) -> None:
    rec = recorded[name]
    assert rec.hwloc is not None
    pus = {int(o.get("os_index", "-1")) for o in _objects(rec.hwloc, "PU")}
    assert sorted(pus) == rec.facts.cpu.online
    assert rec.facts.cpu.threads == len(pus)
    assert rec.facts.cpu.cores == len(_objects(rec.hwloc, "Core"))
    assert rec.facts.cpu.packages == len(_objects(rec.hwloc, "Package"))


@needs_lstopo
@pytest.mark.parametrize("name", NAMES)
def test_numa_nodes_agree_with_hwloc(recorded: dict[str, Recorded], name: str) -> None:
    rec = recorded[name]
    assert rec.hwloc is not None
    theirs = {int(o.get("os_index", "-1")): o for o in _objects(rec.hwloc, "NUMANode")}
    ours = {n.id: n for n in rec.facts.numa.nodes}
    # fakeheterocpunuma is a hand-made tree whose nodes 4 and 5 claim CPUs node 3
    # already has; hwloc drops those two nodes, gotune keeps them (the kernel lists
    # them, with memory) but without the doubly-claimed CPUs, and says so in unknown.
    extra = sorted(set(ours) - set(theirs))
    for node_id in extra:
        assert (
            f"numa.nodes[{node_id}].cpus: overlap another node's, those left out"
            in rec.facts.unknown
        )
    assert extra == ([4, 5] if name == "fakeheterocpunuma" else [])
    assert set(theirs) <= set(ours)
    for node_id, obj in theirs.items():
        node = ours[node_id]
        # hwloc attaches a CPU-less node (CXL, HBM, a generic initiator) to the
        # nearest package and gives it that package's cpuset; the kernel, and
        # gotune, say it has no CPUs of its own. Compare CPUs where it has some.
        if node.cpus:
            assert set(node.cpus) == _bits(obj.get("cpuset")), f"node{node_id}"
        if obj.get("local_memory"):
            assert node.memory_bytes == int(obj.get("local_memory", "0")), f"node{node_id} memory"
        else:
            assert not node.memory_bytes and not node.memory_only, f"node{node_id} memory"


def _hwloc_kinds(xml: ET.Element, online: list[int]) -> list[set[int]]:
    """hwloc's CPU kinds, merged where frequencies agree (see the test below)."""
    groups: dict[tuple[str | None, str | None], set[int]] = {}
    for kind in xml.iter("cpukind"):
        infos = {i.get("name"): i.get("value") for i in kind.iter("info")}
        key = (infos.get("FrequencyBaseMHz"), infos.get("FrequencyMaxMHz"))
        groups.setdefault(key, set()).update(_bits(kind.get("cpuset")))
    if len(groups) <= 1:
        return [set(online)]
    return sorted(groups.values(), key=min)


@needs_lstopo
@pytest.mark.parametrize("name", NAMES)
def test_cpu_kinds_agree_with_hwloc(recorded: dict[str, Recorded], name: str) -> None:
    rec = recorded[name]
    assert rec.hwloc is not None
    ours = sorted((set(k.cpus) for k in rec.facts.cpu.kinds), key=min)
    # hwloc also splits kinds by the exact Linux "cpu_capacity" (NVIDIA GB10: 718,
    # 731, 997, 1017, 1024 -> five kinds); gotune groups capacities within 10 % like
    # frequencies, because a few percent is firmware ranking cores of one type, not
    # another type of core. So hwloc's kinds are merged where their frequencies
    # agree. A tree where only some CPUs report a frequency (2arm-2c: cpu1 has no
    # cpufreq) is one kind to gotune, as hwloc finds no second value either.
    assert ours == _hwloc_kinds(rec.hwloc, rec.facts.cpu.online)


def test_hybrid_laptop_has_p_and_e_cores(recorded: dict[str, Recorded]) -> None:
    kinds = {k.name: k for k in recorded["20em64t-hybrid-1p6c2t+2ca4co1t"].facts.cpu.kinds}
    assert sorted(kinds) == ["E", "P"]
    assert kinds["P"].cpus == list(range(12)) and kinds["E"].cpus == list(range(12, 20))
    assert kinds["P"].max_mhz == 5200 and kinds["E"].max_mhz == 3900


def test_four_node_machine_reports_cpus_and_memory(recorded: dict[str, Recorded]) -> None:
    numa = recorded["64fake-4n2s2ca2c2t"].facts.numa
    assert [n.id for n in numa.nodes] == [0, 1, 2, 3]
    assert all(len(n.cpus) == 16 and n.memory_bytes == 1 << 30 for n in numa.nodes)


@needs_lstopo
@pytest.mark.parametrize("name", NAMES)
def test_numa_distances_agree_with_hwloc(recorded: dict[str, Recorded], name: str) -> None:
    rec = recorded[name]
    assert rec.hwloc is not None
    matrix = next((d for d in rec.hwloc.iter("distances2") if d.get("name") == "NUMALatency"), None)
    if matrix is None:
        assert all(len(n.distances) in (0, 1) for n in rec.facts.numa.nodes)
        return
    order = [int(i) for x in matrix.iter("indexes") for i in (x.text or "").split()]
    if matrix.get("indexing") == "gp":  # hwloc's global persistent ids, not node numbers
        by_gp = {
            int(o.get("gp_index", "-1")): int(o.get("os_index", "-1"))
            for o in _objects(rec.hwloc, "NUMANode")
        }
        order = [by_gp[i] for i in order]
    values = [int(v) for u in matrix.iter("u64values") for v in (u.text or "").split()]
    # A node's sysfs distance row runs over all nodes in id order; hwloc's matrix
    # over the nodes it kept, in its own order.
    ids = [n.id for n in rec.facts.numa.nodes]
    ours = {n.id: dict(zip(ids, n.distances, strict=True)) for n in rec.facts.numa.nodes}
    for row, a in enumerate(order):
        for col, b in enumerate(order):
            assert ours[a][b] == values[row * len(order) + col], f"node{a} -> node{b}"


def test_memory_only_nodes_are_flagged(recorded: dict[str, Recorded]) -> None:
    nodes = recorded["fakememinitiators-1np2c+1npp+gi"].facts.numa.nodes
    memory_only = [n.id for n in nodes if n.memory_only]
    assert memory_only and all(not nodes[i].cpus for i in range(len(nodes)) if nodes[i].memory_only)


def test_kernel_without_numa_gives_one_node_with_everything(recorded: dict[str, Recorded]) -> None:
    facts = recorded["20s390-2g6s4c"].facts
    assert facts.numa.source == "none"
    (node,) = facts.numa.nodes
    assert node.id == 0 and node.cpus == facts.cpu.online
    assert node.memory_bytes == facts.memory.total_bytes


def test_offline_cpus_are_not_counted(recorded: dict[str, Recorded]) -> None:
    cpu = recorded["16em64t-4s2c2t-offlines"].facts.cpu
    assert cpu.threads == 12 and len(cpu.online) == 12


def test_block_devices_and_nics_of_a_recorded_server(recorded: dict[str, Recorded]) -> None:
    facts = recorded["32em64t-2n8c+dax+nvme+mic+dimms"].facts
    devices = {d.name: d for d in facts.storage.devices}
    assert devices["sda"].class_ == "ssd"
    assert devices["nvme0n1"].class_ == "nvme"
    assert not any(name.startswith(("loop", "ram")) for name in devices)
    nics = {n.name: n for n in facts.nics}
    assert nics["lo"].virtual and nics["br0"].virtual
    assert not nics["eth0"].virtual


def test_x86_level_and_arch_of_recorded_cpus(recorded: dict[str, Recorded]) -> None:
    assert recorded["20em64t-hybrid-1p6c2t+2ca4co1t"].facts.cpu.x86_64_level == "v3"
    ppc = recorded["256ppc-8n8s4t"].facts.cpu
    assert ppc.arch == "ppc64" and ppc.x86_64_level is None
    assert recorded["nvidia-dgx-gb10"].facts.cpu.arch == "aarch64"
