"""NUMA wrappers end to end on sandbox hosts, over real SSH with pyinfra.

The 4-node host presents the recorded machine 64fake-4n2s2ca2c2t: numactl there
sees nodes 0-3, but the kernel underneath has only node 0, so binding to node 3
really fails — the case the wrapper must survive.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from gotune.operations.numa import ENVIRONMENT_D, PROFILE_SNIPPET, wrapper_script
from gotune.plan.numa import MEASURED_PATH, WRAPPER_DIR
from tests.conftest import SandboxFactory
from tests.sandbox import Sandbox, SandboxHost
from tests.sandbox_mounts import GOROOT_INSIDE
from tests.test_apply import gotune

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
FOUR_NODES = "64fake-4n2s2ca2c2t"
# The test Go toolchain as every sandbox host sees it, wherever this checkout lives.
GO = f"{GOROOT_INSIDE}/bin/go"

# Logs argc and argv NUL-separated, echoes stdin, prints its NUMA policy, exits $FAKE_EXIT.
FAKE_TOOL = r"""#!/bin/sh
printf '%s\0' "$#" "$@" >> /tmp/fake-calls
cat
numactl --show 2>/dev/null | grep -E '^(policy|preferred node):' >&2
exit "${FAKE_EXIT:-0}"
"""

# A stand-in for a tool that really is faster on its preferred node: it sleeps less when
# numactl has given it a preferred node. Only this makes a "helps" case on a 1-node VM.
NUMA_SENSITIVE_TOOL = r"""#!/bin/sh
if numactl --show 2>/dev/null | grep -q '^preferred node: 0'; then sleep 0.02; else sleep 0.25; fi
"""

ARGV = ["build", "a b", "", "$(id)", "'q'", "*", "-x"]


def _put(host: SandboxHost, path: str, text: str, mode: str = "0755") -> None:
    parent = path.rsplit("/", 1)[0]
    cmd = (
        f"mkdir -p {shlex.quote(parent)} && printf '%s' {shlex.quote(text)} > {shlex.quote(path)} "
        f"&& chmod {mode} {shlex.quote(path)}"
    )
    r = host.run(cmd)
    assert r.returncode == 0, r.stderr


def _calls(host: SandboxHost) -> list[list[str]]:
    out = host.run("cat /tmp/fake-calls 2>/dev/null | base64 -w0").stdout.strip()
    import base64

    tokens = base64.b64decode(out).decode().split("\0")[:-1] if out else []
    calls = []
    while tokens:
        n = int(tokens.pop(0))
        calls.append(tokens[:n])
        del tokens[:n]
    return calls


def _deploy(box: Sandbox, tmp_path: Path, body: str, name: str = "deploy.py") -> str:
    deploy = tmp_path / name
    deploy.write_text(body)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run(
        [str(REPO / ".venv/bin/pyinfra"), "-y", str(box.inventory), str(deploy)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=240,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout + r.stderr  # pyinfra logs its progress to stderr


def test_binding_that_fails_on_a_recorded_4_node_machine_runs_the_tool_once(
    sandbox: SandboxFactory,
) -> None:
    box = sandbox(1, profiles=[FOUR_NODES])
    host = box.hosts[0]
    assert "available: 4 nodes" in host.run("numactl --hardware").stdout
    _put(host, "/opt/real/fake", FAKE_TOOL)
    _put(
        host,
        f"{WRAPPER_DIR}/fake",
        wrapper_script("fake", ["--cpunodebind=3", "--preferred=3"], [3], "test", "/opt/real/fake"),
    )
    argv = " ".join(shlex.quote(a) for a in ARGV)
    r = host.run(
        f"printf 'stdin data' | GOTUNE_NUMA_DEBUG=1 FAKE_EXIT=42 "
        f"PATH={WRAPPER_DIR}:/opt/real:/usr/bin:/bin fake {argv}"
    )
    assert r.returncode == 42
    assert r.stdout == "stdin data"
    assert "numactl --cpunodebind=3 --preferred=3 fails here" in r.stderr
    assert _calls(host) == [ARGV]

    # Node 0 exists in the kernel too: the same wrapper binding there really binds.
    _put(
        host,
        f"{WRAPPER_DIR}/fake",
        wrapper_script("fake", ["--cpunodebind=0", "--preferred=0"], [0], "test", "/opt/real/fake"),
    )
    r = host.run(f"FAKE_EXIT=0 PATH={WRAPPER_DIR}:/opt/real:/usr/bin:/bin fake one </dev/null")
    assert r.returncode == 0
    assert "preferred node: 0" in r.stderr
    assert _calls(host) == [ARGV, ["one"]]


def _wrapper_op(
    tool: str, args: list[str], nodes: list[int], real: str, workload: list[str]
) -> str:
    return (
        f"    numa.wrapper(name='numa wrapper', tool={tool!r}, numactl_args={args!r},\n"
        f"                 nodes={nodes!r}, reason='test', user='alice', real={real!r},\n"
        f"                 workload={workload!r}, pairs=5)\n"
    )


def _state(host: SandboxHost) -> str:
    """Everything the NUMA operations own on the host, with mtimes (a change shows)."""
    paths = " ".join(
        [WRAPPER_DIR, "/usr/local/lib/gotune", PROFILE_SNIPPET, ENVIRONMENT_D, MEASURED_PATH]
    )
    return host.run(f"find {paths} -printf '%p %m %u %T@\\n' 2>/dev/null | sort").stdout


def test_wrappers_stay_only_where_they_help_apply_is_idempotent_and_undo_removes_them(
    sandbox: SandboxFactory,
    tmp_path: Path,
) -> None:
    box = sandbox(2, profiles=[FOUR_NODES, None])
    four, one = box.hosts
    for h in box.hosts:
        h.add_user("alice")
    _put(one, "/opt/real/numa-sensitive", NUMA_SENSITIVE_TOOL)
    body = (
        "from pyinfra import host\n"
        "from gotune.deploys.agent import install_agent\n"
        "from gotune.operations import numa\n"
        "install_agent()  # numa-measure runs from the agent\n"
        "numa.search_path(name='numa path')\n"
        f"if host.name == {four.name!r}:\n"
        # Interleaving over nodes 0-3 cannot bind on this kernel: the wrapper only adds its probe.
        + _wrapper_op("go", ["--interleave=0,1,2,3"], [0, 1, 2, 3], GO, ["version"])
        + "else:\n"
        + _wrapper_op(
            "numa-sensitive",
            ["--cpunodebind=0", "--preferred=0"],
            [0],
            "/opt/real/numa-sensitive",
            ["run"],
        )
    )
    _deploy(box, tmp_path, body)

    # Not helpful: measured, removed, the figures recorded.
    record = json.loads(four.run(f"cat {MEASURED_PATH}").stdout)["tools"]["go"]
    assert record["keep"] is False and record["removed"] is True
    assert record["pairs"] == 5 and len(record["plain_s"]) == 5 and len(record["wrapped_s"]) == 5
    assert record["verdict"] != "faster"
    assert four.run(f"test -e {WRAPPER_DIR}/go").returncode == 1

    # Helpful: kept, root's and not writable by others, first on a login shell's PATH.
    record = json.loads(one.run(f"cat {MEASURED_PATH}").stdout)["tools"]["numa-sensitive"]
    assert record["keep"] is True, record
    assert record["wrapped_median_s"] < record["plain_median_s"]
    assert one.run(
        f"stat -c '%U %G %a' {WRAPPER_DIR}/numa-sensitive {WRAPPER_DIR}"
    ).stdout.split() == ["root", "root", "755", "root", "root", "755"]
    assert one.run("bash -lc 'command -v numa-sensitive'", user="alice").stdout.strip() == (
        f"{WRAPPER_DIR}/numa-sensitive"
    )
    assert "PATH=/usr/local/lib/gotune/bin${PATH:+:$PATH}" in one.run(f"cat {ENVIRONMENT_D}").stdout

    before = [_state(h) for h in box.hosts]
    second = _deploy(box, tmp_path, body)
    # The agent's two operations and the NUMA ones, on both hosts.
    assert second.count("No changes") == 8, second
    assert [_state(h) for h in box.hosts] == before

    undo = gotune("undo", str(box.inventory), "--yes", "--json")
    assert undo.returncode == 0, undo.stderr
    for h in box.hosts:
        gone = h.run(
            f"ls -d {WRAPPER_DIR} /usr/local/lib/gotune {PROFILE_SNIPPET} {ENVIRONMENT_D} "
            f"{MEASURED_PATH} 2>/dev/null"
        )
        assert gone.stdout == ""
    assert (
        one.run("test -x /opt/real/numa-sensitive").returncode == 0
    )  # the tool itself is untouched
