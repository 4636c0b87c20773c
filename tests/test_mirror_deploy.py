"""deploys/mirror.py on a sandbox host over SSH: supervised mirror, restart, undo.

Sandbox hosts run no systemd, so this exercises the supervised-process path; the
systemd unit is checked as rendered text. The upstream is a GOPROXY tree served
from this test process on loopback (sandbox hosts share the network namespace).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gotune.deploys.mirror import serve_argv
from gotune.operations.render import render
from gotune.plan.mirror import developer_goproxy
from gotune.settings import validate_host_data
from tests.conftest import SandboxFactory
from tests.goproxy_tree import StaticUpstream, build_tree, standard_modules

REPO = Path(__file__).resolve().parent.parent
PYINFRA = Path(sys.executable).parent / "pyinfra"
LIB_ZIP = "/example.com/!big!corp/!lib/@v/v1.1.0.zip"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pyinfra(inventory: Path) -> str:
    out = subprocess.run(
        [str(PYINFRA), "-y", str(inventory), "deploys/mirror.py"],
        capture_output=True, text=True, timeout=300, cwd=REPO, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def undo(inventory: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "gotune", "undo", str(inventory), "--yes", "--json"],
        capture_output=True, text=True, timeout=300, cwd=REPO, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def grand_total(output: str) -> list[str]:
    line = next(ln for ln in output.splitlines() if ln.strip().startswith("Grand total"))
    return line.split()[2:]


def changed_mirror_operations(output: str) -> list[str]:
    """Result rows of the mirror's own operations that report a change or an error.

    The agent upload is left out: its bytes are the checkout's gotune package, which
    other work in the same checkout may edit between two runs of this test.
    """
    rows = []
    for line in output.splitlines():
        if "gotune module mirror |" not in line or "Upload the gotune agent" in line:
            continue
        cols = line.split()
        if line.lstrip().startswith("-->") or not cols[-4].isdigit():
            continue  # progress lines, not the results table
        if cols[-3:-1] != ["-", "-"]:
            rows.append(line.strip())
    return rows


def healthz(url: str, timeout: float = 15.0) -> dict[str, object] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                data: dict[str, object] = json.loads(r.read())
                return data
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    return None


def test_developer_goproxy_falls_back_to_upstream_then_direct() -> None:
    s = validate_host_data({"gotune_mirror_port": 3111})
    assert developer_goproxy(s) == "http://127.0.0.1:3111|https://proxy.golang.org,direct"
    s = validate_host_data({
        "gotune_mirror_listen": "0.0.0.0", "gotune_mirror_allow": ["10.0.0.0/8"],
        "gotune_mirror_upstream": "https://a.example|https://b.example,off",
    })
    assert developer_goproxy(s) == "http://127.0.0.1:3000|https://a.example|https://b.example,off"


def test_systemd_unit_restarts_on_failure_and_is_sandboxed() -> None:
    s = validate_host_data(
        {"gotune_mirror_limit_rate": "8M", "gotune_mirror_allow": ["10.1.0.0/16"]}
    )
    command = " ".join(serve_argv("/usr/bin/python3", s, "/var/cache/gotune/mirror"))
    unit = render("mirror-unit.service.j2", listen="127.0.0.1", port=3000,
                  cache_dir="/var/cache/gotune/mirror", user="gotune-mirror", command=command)
    for line in ["Restart=on-failure", "User=gotune-mirror", "ProtectSystem=strict",
                 "ReadWritePaths=/var/cache/gotune/mirror", "NoNewPrivileges=yes",
                 "CapabilityBoundingSet="]:
        assert line in unit.splitlines()
    assert "--limit-rate 8M" in command and "--allow 10.1.0.0/16" in command


@pytest.mark.sandbox
@pytest.mark.slow
def test_mirror_deploy_runs_supervised_restarts_after_kill_and_undo_removes_it(
    sandbox: SandboxFactory, tmp_path: Path
) -> None:
    tree = build_tree(tmp_path / "upstream", standard_modules())
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with StaticUpstream(tree) as up:
        box = sandbox(1, data={"gotune_mirror_enabled": True, "gotune_mirror_port": port,
                               "gotune_mirror_upstream": up.url,
                               "gotune_mirror_cache_dir": "/var/cache/gotune/mirror"})
        host = box.hosts[0]
        first = pyinfra(box.inventory)
        assert grand_total(first)[1] != "-"
        health = healthz(url)
        assert health is not None, host.run("cat /var/log/gotune-mirror.log").stdout
        with urllib.request.urlopen(url + LIB_ZIP, timeout=10) as r:
            assert r.read() == (tree / LIB_ZIP.lstrip("/")).read_bytes()
        owner = host.run("stat -c %U /var/cache/gotune/mirror/example.com/!big!corp/!lib/@v/"
                         "v1.1.0.zip").stdout.strip()
        assert owner == "gotune-mirror"

        second = pyinfra(box.inventory)
        assert changed_mirror_operations(second) == [], second

        # kill -9 the mirror: the supervisor starts a new one.
        pid = host.run(f"pgrep -u gotune-mirror -f 'mirror serve.*{port}'").stdout.split()
        assert len(pid) == 1
        host.run(f"kill -9 {pid[0]}")
        time.sleep(1.5)
        assert healthz(url) is not None
        new_pid = host.run(f"pgrep -u gotune-mirror -f 'mirror serve.*{port}'").stdout.split()
        assert new_pid and new_pid != pid

        undo(box.inventory)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and healthz(url, timeout=0.5) is not None:
            time.sleep(0.3)
        assert healthz(url, timeout=0.5) is None  # the mirror stopped
        gone = host.run("test -e /opt/gotune/gotune-mirror-supervise || "
                        "test -e /var/cache/gotune/mirror || id -u gotune-mirror || "
                        "echo gone").stdout.strip()
        assert gone == "gone"  # the account gotune made went with the rest


@pytest.mark.sandbox
def test_an_account_that_was_there_before_is_used_kept_by_undo_and_changes_nothing(
    sandbox: SandboxFactory, tmp_path: Path
) -> None:
    tree = build_tree(tmp_path / "upstream", standard_modules())
    port = free_port()
    with StaticUpstream(tree) as up:
        box = sandbox(1, data={"gotune_mirror_enabled": True, "gotune_mirror_port": port,
                               "gotune_mirror_upstream": up.url})
        host = box.hosts[0]
        made = host.run("useradd --system --no-create-home --shell /usr/sbin/nologin "
                        "gotune-mirror && id -u gotune-mirror")  # an admin made it earlier
        assert made.returncode == 0, made.stderr
        pyinfra(box.inventory)
        assert healthz(f"http://127.0.0.1:{port}") is not None
        assert changed_mirror_operations(pyinfra(box.inventory)) == []
        assert undo(box.inventory)["hosts"]["sbx1"]["restores"]["users"] == []
        assert host.run("id -u gotune-mirror").stdout.strip() == made.stdout.strip()
