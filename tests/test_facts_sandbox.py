"""End to end over real SSH: sandbox hosts presenting recorded machines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gotune.facts.collect import collect_local
from gotune.facts.machine import parse_output
from tests.conftest import SandboxFactory
from tests.sandbox_mounts import GOROOT_INSIDE

REPO = Path(__file__).resolve().parent.parent
# The test Go toolchain as every sandbox host sees it, wherever this checkout lives.
GOROOT_BIN = f"{GOROOT_INSIDE}/bin/go"

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


def gotune_facts(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "gotune", "facts", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def test_hosts_with_different_hardware_report_their_own_topology(sandbox: SandboxFactory) -> None:
    sbx = sandbox(3, profiles=[None, "64fake-4n2s2ca2c2t", "20em64t-hybrid-1p6c2t+2ca4co1t"])
    hosts = gotune_facts(str(sbx.inventory))["hosts"]
    assert sorted(hosts) == ["sbx1", "sbx2", "sbx3"]

    # A plain host is this machine (seen from inside its sandbox).
    here = parse_output(collect_local("/"))
    plain = hosts["sbx1"]
    assert plain["cpu"]["threads"] == os.cpu_count() == here.cpu.threads
    assert plain["cpu"]["model"] == here.cpu.model
    assert plain["platform"]["virtualization"] == here.platform.virtualization
    assert plain["platform"]["distro"] == here.platform.distro

    four = hosts["sbx2"]["numa"]["nodes"]
    assert [n["id"] for n in four] == [0, 1, 2, 3]
    assert [n["cpus"] for n in four] == [list(range(16 * i, 16 * i + 16)) for i in range(4)]
    assert all(n["memory_bytes"] == 1 << 30 for n in four)
    assert hosts["sbx2"]["cpu"]["packages"] == 8 and hosts["sbx2"]["cpu"]["threads"] == 64

    kinds = {k["name"]: k for k in hosts["sbx3"]["cpu"]["kinds"]}
    assert sorted(kinds) == ["E", "P"]
    assert kinds["P"]["cpus"] == list(range(12)) and kinds["E"]["cpus"] == list(range(12, 20))
    assert hosts["sbx3"]["cpu"]["model"] == "13th Gen Intel(R) Core(TM) i7-1370P"


def test_developer_users_go_env_and_cache_placement(sandbox: SandboxFactory) -> None:
    sbx = sandbox(1, data={"gotune_users": ["dev"]})
    host = sbx.hosts[0]
    host.add_user("dev")
    # A real Go toolchain where gotune looks besides the login PATH, and no distro go
    # before it (removed in this host only).
    done = host.run(f"rm -f /usr/bin/go && mkdir -p /usr/local/go/bin && "
                    f"ln -sf {GOROOT_BIN} /usr/local/go/bin/go")
    assert done.returncode == 0, done.stderr
    facts = gotune_facts(str(sbx.inventory))["hosts"]["sbx1"]
    assert facts["user"]["name"] == "dev" and facts["user"]["home"] == "/home/dev"
    go = facts["go"]
    assert go is not None and go["GOVERSION"].startswith("go1.")
    assert go["GOTOOLCHAIN"] == "local"  # gotune never lets `go env` fetch a toolchain
    assert go["GOCACHE"] == "/home/dev/.cache/go-build"
    paths = facts["storage"]["paths"]
    assert paths["home"]["path"] == "/home/dev" and paths["home"]["mount"] == "/"
    assert paths["gocache"]["path"] == go["GOCACHE"]
    assert paths["gomodcache"]["path"] == "/home/dev/go/pkg/mod"
    assert paths["gocache"]["free_bytes"] > 0


def test_go_absent_is_null_with_default_paths(sandbox: SandboxFactory) -> None:
    sbx = sandbox(1, data={"gotune_users": ["dev"]})
    sbx.hosts[0].add_user("dev")
    # No go anywhere gotune looks (a distro's /usr/bin/go removed in this host only).
    assert sbx.hosts[0].run("rm -rf /usr/bin/go /usr/local/bin/go /usr/local/go").returncode == 0
    facts = gotune_facts(str(sbx.inventory))["hosts"]["sbx1"]
    assert facts["go"] is None
    assert facts["storage"]["paths"]["gocache"]["path"] == "/home/dev/.cache/go-build"


COUNT_COMMANDS = """
import json, sys
from gotune.facts.machine import Machine
from gotune.inventory import connected

commands = {}
with connected(sys.argv[1]) as conn:
    for host in conn.hosts:
        original = host.run_shell_command

        def counting(*args, _run=original, _name=host.name, **kwargs):
            commands.setdefault(_name, []).append(str(args[0]))
            return _run(*args, **kwargs)

        host.run_shell_command = counting
        facts = host.get_fact(Machine, users=["root"])
        assert facts.cpu.threads, host.name
print(json.dumps({name: len(cmds) for name, cmds in commands.items()}))
"""


def test_the_machine_fact_costs_one_command_per_host(sandbox: SandboxFactory) -> None:
    sbx = sandbox(2, profiles=[None, "64fake-4n2s2ca2c2t"])
    # In a child process: pyinfra's CLI package gevent-patches whatever imports it.
    out = subprocess.run(
        [sys.executable, "-c", COUNT_COMMANDS, str(sbx.inventory)],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=True,
    )  # fmt: skip
    assert json.loads(out.stdout) == {"sbx1": 1, "sbx2": 1}
