"""The NUMA rule on every recorded machine in tests/fixtures/hwloc.

Facts come from the real collector run over each recorded /sys+/proc tree and the
real parser. Where a test needs a fact the recording lacks (GOCACHE's device, a
memory tier), it sets that one fact on the parsed machine and says so.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from gotune.facts.model import BlockDevice, Facts, PathPlacement, User, UserFacts
from gotune.plan.model import Decision, TmpfsCache
from gotune.plan.numa import mirror_decision, plan_numa, topology
from tests.recorded import RecordedTrees

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hwloc"

MULTI_NODE = [
    "128ia64-17n4s2c",
    "16amd64-8n2c",
    "16amd64-8n2c-cpusets",
    "256ppc-8n8s4t",
    "32em64t-2n8c+dax+nvme+mic+dimms",
    "32intel64-2p8co2t+8ve",
    "40intel64-2g2n4c+pcilocality",
    "64fake-4n2s2ca2c2t",
    "8ia64-2n2s2c",
    "fakeheterocpunuma",
    "fakememinitiators-1np2c+1npp+gi",
    "fakepcilocalities",
]
SINGLE_NODE = [
    "16em64t-4s2c2t",
    "16em64t-4s2c2t-offlines",
    "16em64t-4s2ca2c-cpusetreorder",
    "20em64t-hybrid-1p6c2t+2ca4co1t",
    "20s390-2g6s4c",
    "2arm-2c",
    "2pa-pcidomain32bits",
    "8em64t-2s2ca2c",
    "nvidia-dgx-gb10",
]


@pytest.fixture
def machines(recorded_trees: RecordedTrees) -> dict[str, Facts]:
    return {name: recorded_trees.facts(name) for name in MULTI_NODE + SINGLE_NODE}


def numa(
    facts: Facts, gocache: Decision | None = None, measured: dict[str, Any] | None = None
) -> list[Any]:
    """The plan's NUMA decisions for facts (with ``measured`` as the host's numa.json)."""
    facts = copy.deepcopy(facts)
    facts.gotune.numa_measured = measured or {}
    return plan_numa(facts, gocache).decisions()


def with_gocache(facts: Facts, placement: PathPlacement) -> Facts:
    """The facts with a developer user whose GOCACHE lives at ``placement``."""
    facts = copy.deepcopy(facts)
    facts.set_users({"dev": UserFacts(user=User(name="dev"), paths={"gocache": placement})})
    return facts


def test_every_fixture_is_classified() -> None:
    names = {p.name.removesuffix(".tar.bz2") for p in FIXTURES.glob("*.tar.bz2")}
    assert names == set(MULTI_NODE) | set(SINGLE_NODE)


def _nodes_in(args: str, option: str) -> list[int]:
    found = re.findall(rf"--{option}=([0-9,]+)", args)
    return [int(n) for group in found for n in group.split(",")]


@pytest.mark.parametrize("name", MULTI_NODE)
def test_multi_node_machine_gets_tool_decisions_that_never_bind_memory_off_dram(
    machines: dict[str, Facts],
    name: str,
) -> None:
    facts = machines[name]
    decisions = numa(facts)
    assert [d.key for d in decisions] == ["numa", "numa.gopls", "numa.go", "numa.dlv"]
    for d in decisions:
        assert d.reason and d.facts_used
    nodes = {n.id: n for n in facts.numa.nodes}
    memory_ids = set()
    for d in decisions:
        args = d.value or "" if d.key != "numa" else ""
        memory_ids |= set(
            _nodes_in(args, "preferred")
            + _nodes_in(args, "interleave")
            + _nodes_in(args, "membind")
        )
        for n in _nodes_in(args, "cpunodebind"):
            assert nodes[n].cpus, f"{d.key} binds to CPU-less node {n}"
    for n in memory_ids:
        assert nodes[n].cpus and nodes[n].memory_bytes and not nodes[n].memory_only, (
            f"memory bound to node {n}, which is not DRAM with CPUs"
        )
    gopls, go, dlv = decisions[1:]
    assert gopls.value is not None and gopls.value.startswith("--cpunodebind=")
    assert gopls.change and "keeps it only if it beats the noise" in gopls.reason
    assert "go.alternateTools" in gopls.reason  # where VS Code finds gopls is said
    assert "--cpunodebind" not in (go.value or "") and "--membind" not in (go.value or "")
    assert "GOMAXPROCS follows the CPU affinity" in go.reason
    assert dlv.value is None and "no benchmark" in dlv.reason


@pytest.mark.parametrize("name", SINGLE_NODE)
def test_single_node_machine_gets_no_wrappers_and_says_why(
    machines: dict[str, Facts], name: str
) -> None:
    (d,) = numa(machines[name])
    assert d.key == "numa" and d.value is None and not d.change
    assert "one NUMA node with CPUs" in d.reason and "none are written" in d.reason


def test_memory_only_nodes_are_never_bound_and_cpu_nodes_without_memory_get_cpu_binding_only(
    machines: dict[str, Facts],
) -> None:
    facts = machines["fakememinitiators-1np2c+1npp+gi"]
    topo = topology(facts)
    assert [n.id for n in topo.cpu_nodes] == [0, 1, 2, 3]
    assert [n.id for n in topo.memory_only] == [
        5,
        6,
        7,
        8,
        9,
        10,
    ]  # DRAM of CPU-less nodes and NVDIMM
    assert topo.dram_nodes == []
    node, gopls, go, _ = numa(facts)
    assert gopls.value == "--cpunodebind=0"
    assert "no memory of its own" in node.reason
    assert go.value is None and "nothing to interleave" in go.reason


def test_gocache_device_decides_the_node(machines: dict[str, Facts]) -> None:
    facts = copy.deepcopy(machines["32em64t-2n8c+dax+nvme+mic+dimms"])
    pmem = next(d for d in facts.storage.devices if d.name == "pmem0.1")
    assert pmem.numa_node == 0  # recorded
    # Without a GOCACHE location the biggest node (1) is taken...
    assert numa(facts)[0].value == "1"
    # ...with GOCACHE on the pmem device (set here: the recording has no mounts), its node.
    facts = with_gocache(
        facts, PathPlacement(path="/home/dev/.cache/go-build", device="/dev/pmem0.1")
    )
    node, gopls, go, _ = numa(facts)
    assert node.value == "0" and "local to pmem0.1, which holds GOCACHE" in node.reason
    assert "storage.devices[pmem0.1].numa_node=0" in node.facts_used
    assert gopls.value == "--cpunodebind=0 --preferred=0"
    assert go.value == "--interleave=0,1"


def test_device_on_a_cpu_less_node_picks_the_nearest_cpu_node(machines: dict[str, Facts]) -> None:
    facts = copy.deepcopy(machines["fakememinitiators-1np2c+1npp+gi"])
    # Node 4 is the recording's generic initiator (no CPUs, no memory); a disk is put on it here.
    facts.storage.devices = [BlockDevice(name="nvme0n1", class_="nvme", numa_node=4)]
    facts = with_gocache(facts, PathPlacement(path="/c", device="/dev/nvme0n1p2"))
    node = numa(facts)[0]
    # Distances from node 4: 12 to nodes 0 and 2, 31 to nodes 1 and 3; the lower id wins the tie.
    assert node.value == "0"
    assert "CPU-less node 4" in node.reason and "distance 12" in node.reason


def test_gocache_on_tmpfs_falls_back_to_the_biggest_node(machines: dict[str, Facts]) -> None:
    facts = machines["32em64t-2n8c+dax+nvme+mic+dimms"]
    tmpfs = TmpfsCache(
        key="GOCACHE", value="/var/cache/gotune/tmpfs/dev/go-build", medium="tmpfs",
        reason="r", change=True, user="dev", mountpoint="/var/cache/gotune/tmpfs/dev",
        size_bytes=1 << 30, snapshot="/home/dev/.cache/gotune/go-build.tar",
    )
    node = numa(facts, gocache=tmpfs)[0]
    assert node.value == "1" and "GOCACHE goes to tmpfs" in node.reason


def test_slower_memory_tier_is_not_dram(machines: dict[str, Facts]) -> None:
    facts = copy.deepcopy(machines["8ia64-2n2s2c"])
    # Tiers set here (the recording predates memory tiering): node 1 as slower, CXL-like memory.
    facts.numa.nodes[0].tier, facts.numa.nodes[1].tier = 1, 4
    node, gopls, go, _ = numa(facts)
    assert [n.id for n in topology(facts).dram_nodes] == [0]
    assert node.value == "1"  # the biggest node still runs gopls' CPUs...
    assert gopls.value == "--cpunodebind=1"  # ...but its slow memory is never preferred
    assert go.value is None


def test_cpuset_restricted_nodes_are_left_out(machines: dict[str, Facts]) -> None:
    facts = copy.deepcopy(machines["8ia64-2n2s2c"])
    facts.cpu.allowed = list(facts.numa.nodes[0].cpus)  # a cpuset holding node 0's CPUs only
    (d,) = numa(facts)
    assert d.value is None and "one NUMA node with CPUs (node 0)" in d.reason


def test_measured_figures_keep_or_remove_a_wrapper_and_the_plan_shows_them(
    machines: dict[str, Facts],
) -> None:
    facts = machines["8ia64-2n2s2c"]
    helped = {
        "numactl_args": ["--cpunodebind=1", "--preferred=1"],
        "keep": True,
        "verdict": "faster",
        "gain": 0.081,
        "threshold": 0.05,
        "plain_median_s": 2.0,
        "wrapped_median_s": 1.838,
        "pairs": 7,
    }
    noise = {
        "numactl_args": ["--interleave=0,1"],
        "keep": False,
        "verdict": "no measurable difference",
        "gain": 0.004,
        "threshold": 0.05,
        "plain_median_s": 0.412,
        "wrapped_median_s": 0.41,
        "pairs": 7,
    }
    _, gopls, go, _ = numa(facts, measured={"gopls": helped, "go": noise})
    assert gopls.value == "--cpunodebind=1 --preferred=1" and not gopls.change
    assert (
        "kept: wrapped 1.838 s vs plain 2.000 s (median of 7 interleaved pairs): 8.1% faster"
        in gopls.reason
    )
    assert go.value is None and not go.change
    assert "removed: wrapped 0.410 s vs plain 0.412 s" in go.reason
    assert "verdict 'no measurable difference'" in go.reason and "more than 5% apart" in go.reason
    assert go.measured["gain"] == 0.004
    # The wrapper's text (its comment) comes from the reason without figures, so a kept
    # wrapper is the same file on the next apply and is not measured again.
    before = numa(facts)[1]
    assert before.why == gopls.why and before.why in gopls.reason
    # Figures for another policy (the topology changed) do not count: measure again.
    stale = dict(helped, numactl_args=["--cpunodebind=0", "--preferred=0"])
    assert numa(facts, measured={"gopls": stale})[1].change


def test_failed_measurement_removes_the_wrapper_and_says_why(machines: dict[str, Facts]) -> None:
    failed = {
        "numactl_args": ["--interleave=0,1"],
        "keep": False,
        "error": "go build exited 1: no space",
    }
    go = numa(machines["8ia64-2n2s2c"], measured={"go": failed})[2]
    assert go.value is None and "the workload failed (go build exited 1: no space)" in go.reason


def test_mirror_runs_on_the_node_of_its_nic(machines: dict[str, Facts]) -> None:
    facts = machines["32em64t-2n8c+dax+nvme+mic+dimms"]
    d = mirror_decision(facts)
    assert d.nic == "eth0" and d.value == "--cpunodebind=0 --preferred=0"
    assert d.numactl_args == ["--cpunodebind=0", "--preferred=0"]
    assert mirror_decision(facts, "lo").value is None
    assert mirror_decision(facts, "nope0").reason == "NIC nope0 not found"
    # eth0 of this recording has no NUMA node: no binding.
    assert mirror_decision(machines["40intel64-2g2n4c+pcilocality"]).value is None
    assert mirror_decision(machines["20em64t-hybrid-1p6c2t+2ca4co1t"]).value is None
