"""A WSL2 distro end to end: plan, apply, verify, apply again, undo — on sandbox hosts.

Each host poses as a WSL2 distro on a 32 GiB, 16-thread Windows PC
(``tests/sandbox_wsl.py``): a WSL kernel, WSL's session environment with the Windows
folders on PATH, C: at /mnt/c as a slow 9p-like mount, and stand-ins for cmd.exe,
PowerShell, wsl.exe and wslpath (Windows cannot run here). The developer's files are
the ones people have: a .wslconfig saved by Notepad (byte order mark, CRLF, a second
[wsl2] block, a key WSL does not know), a GOPATH on C:, a Go module on C: in the
shell history. Bad input gets its own hosts: a .wslconfig with a broken line, a
wsl.conf that belongs to the user, and a distro with interop off and no /mnt/c.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SandboxFactory
from tests.sandbox import SandboxHost
from tests.sandbox_wsl import Wsl2

pytestmark = [pytest.mark.sandbox, pytest.mark.slowstorage, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
USER = "dev"
PROFILE = "/mnt/c/Users/Dev User"
WSLCONFIG = PROFILE + "/.wslconfig"
GOENV = "/home/dev/.config/go/env"
NOTEPAD = (b"\xef\xbb\xbf# WSL settings\r\n[wsl2]\r\nmemory=8GB  # a small laptop once\r\n"
           b"guiApplications=false\r\nfutureKey=kept as it is\r\n\r\n[wsl2]\r\nmemory=2GB\r\n")
WSL_CONF = b"# my distro\n[boot]\ncommand = service ssh start\n\n[user]\ndefault = dev\n"
DATA = {"gotune_users": [USER], "gotune_gocache_tmpfs": "never"}


def gotune(*args: str, status: int = 0) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "gotune", *args, "--json"], capture_output=True,
                         text=True, timeout=900, cwd=REPO)  # fmt: skip
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == status, out.stderr[-3000:]
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def sh(host: SandboxHost, cmd: str, user: str = "root") -> str:
    out = host.run(cmd, user=user, timeout=180)
    assert out.returncode == 0, f"{cmd}: {out.stdout[-1500:]} {out.stderr[-1500:]}"
    return out.stdout


def sha256(host: SandboxHost, *paths: str) -> dict[str, str]:
    """Each path's sha256 on the host ("absent" when there is none)."""
    out = {}
    for p in paths:
        q = shlex.quote(p)
        out[p] = sh(host, f"if test -e {q}; then sha256sum {q} | cut -c1-64; "
                          "else echo absent; fi").strip()  # fmt: skip
    return out


def read(host: SandboxHost, path: str) -> bytes:
    """A file's bytes on the host, exactly."""
    return subprocess.run([*host.ssh_argv(), f"cat {shlex.quote(path)}"], capture_output=True,
                          check=True, timeout=60).stdout  # fmt: skip


def outline(plan: dict[str, Any]) -> list[tuple[Any, ...]]:
    """A plan's decisions without their reasons (which quote figures measured each run)."""
    return [(d["key"], d["user"], d["value"], d["change"], d["details"].get("keys"))
            for d in plan["decisions"]]  # fmt: skip


def by_key(decisions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["key"]: d for d in decisions}


def test_a_wsl2_distro_is_planned_applied_verified_reapplied_unchanged_and_undone_bytewise(
    sandbox: SandboxFactory, tmp_path: Path
) -> None:
    box = sandbox(1, data=[DATA], wsl=Wsl2(wslconfig=NOTEPAD, wsl_conf=WSL_CONF))
    host = box.hosts[0]
    host.add_user(USER)
    host.link_go()
    inventory = str(box.inventory)
    module = f"{PROFILE}/src/hello"
    sh(host, f"mkdir -p ~/.config/go {shlex.quote(module)} && "
             f"printf 'GOPATH={PROFILE}/go\\n' > ~/.config/go/env && "
             f"printf 'module hello\\n\\ngo 1.22\\n' > {shlex.quote(module + '/go.mod')} && "
             f"printf '%s\\n' 'cd \"{module}\"' 'go build' > ~/.bash_history", user=USER)
    before = sha256(host, "/etc/wsl.conf", WSLCONFIG, GOENV)

    # The facts gotune prints, fed back to the planner, give the plan apply carries out.
    printed = gotune("facts", inventory)
    facts = printed["hosts"]["sbx1"]
    wsl = facts["wsl"]
    assert facts["platform"]["virtualization"] == "wsl2"
    assert (wsl["windows_profile"], wsl["profile_source"]) == (PROFILE, "interop")
    assert (wsl["windows_memory_bytes"] // 1024**3, wsl["windows_cpus"]) == (31, 16)
    assert wsl["wslconfig"]["text"].startswith("\ufeff# WSL settings\r\n")
    assert len(wsl["windows_path_entries"]) == 11 and len(wsl["lookup_with_s"]) == 10
    assert wsl["projects"] == [{"user": USER, "path": module, "source": "history"}]
    saved = tmp_path / "facts.json"
    saved.write_text(json.dumps(printed))
    planned = gotune("plan", inventory, "--facts", str(saved))["hosts"]["sbx1"]
    plan = by_key(planned["decisions"])
    assert plan["wsl.conf"]["details"]["keys"] == {
        "boot.systemd": "true", "automount.options": "metadata",
        "interop.appendWindowsPath": "false"}
    assert plan[".wslconfig"]["details"]["keys"] == {
        "wsl2.memory": "24GB", "experimental.autoMemoryReclaim": "gradual"}
    assert plan[".wslconfig"]["details"]["was"]["wsl2.memory"] == "8GB"
    assert plan["GOPATH"]["value"] == "/home/dev/go"
    assert any(w.startswith("`wsl --shutdown` from Windows") for w in planned["warnings"])
    (warning,) = [w for w in planned["warnings"] if "Go module" in w]
    assert f"{module} (history) is on /mnt/c" in warning and "ms on / (" in warning

    applied = gotune("apply", inventory, "--yes", "--no-verify")["hosts"]["sbx1"]
    assert applied["ok"] and applied["changed"] > 0
    # The same decisions; only the figures measured again (lookups, 9p's cost) differ.
    assert outline(applied["plan"]) == outline(planned)
    wslconfig = read(host, WSLCONFIG)
    assert wslconfig == (b"\xef\xbb\xbf# WSL settings\r\n[wsl2]\r\nmemory=24GB  # a small laptop "
                         b"once\r\nguiApplications=false\r\nfutureKey=kept as it is\r\n\r\n"
                         b"[wsl2]\r\nmemory=2GB\r\n\r\n[experimental]\r\n"
                         b"autoMemoryReclaim=gradual\r\n")  # fmt: skip
    assert read(host, "/etc/wsl.conf") == (
        b"# my distro\n[boot]\ncommand = service ssh start\nsystemd = true\n\n[user]\n"
        b'default = dev\n\n[automount]\noptions = "metadata"\n\n[interop]\n'
        b"appendWindowsPath = false\n")
    assert sh(host, "cat /run/gotune/wsl-restart-needed").split("\n")[:2] == [
        "/etc/wsl.conf", WSLCONFIG]
    assert sh(host, "cat /proc/sys/fs/inotify/max_user_watches") == "524288\n"
    assert "GOPATH=/home/dev/go\n" in sh(host, "cat ~/.config/go/env", user=USER)
    assert json.loads(sh(host, "cat /var/lib/gotune/wsl.json"))["verdict"] == "faster"

    verified = gotune("verify", inventory, "--bench", "none")["hosts"]["sbx1"]
    checks = {c["name"]: (c["ok"], c["detail"]) for c in verified["checks"]}
    for name in ("wsl.conf holds the planned keys", ".wslconfig holds the planned keys",
                 "fs.inotify.max_user_watches", "systemd runs",
                 "dev: Go paths off Windows' drives"):
        assert checks[name][0], (name, checks[name])
    assert checks["WSL restart"][1].startswith("pending")

    again = gotune("apply", inventory, "--yes", "--no-verify")["hosts"]["sbx1"]
    assert again["changed"] == 0, [d["key"] for d in again["plan"]["decisions"] if d["change"]]

    undone = gotune("undo", inventory, "--yes")["hosts"]["sbx1"]
    assert {"/etc/wsl.conf", WSLCONFIG, GOENV} <= set(undone["restores"]["files"])
    assert sha256(host, "/etc/wsl.conf", WSLCONFIG, GOENV) == before
    assert sha256(host, "/etc/sysctl.d/60-gotune-inotify.conf", "/var/lib/gotune/wsl.json") == {
        "/etc/sysctl.d/60-gotune-inotify.conf": "absent", "/var/lib/gotune/wsl.json": "absent"}
    assert sh(host, "test -e /run/gotune/wsl-restart-needed && echo again") == "again\n"


def test_bad_input_is_named_in_the_plan_and_nothing_is_half_written(
    sandbox: SandboxFactory,
) -> None:
    broken = b"[wsl2]\r\nmemory 8GB\r\nprocessors=4\r\n"
    box = sandbox(2, data=[DATA, DATA], wsl=[
        Wsl2(wslconfig=broken, wsl_conf=b"[boot]\nsystemd=true\n"),
        Wsl2(interop=False, wsl_conf=None)])  # fmt: skip
    odd, no_interop = box.hosts
    for host in box.hosts:
        host.add_user(USER)
    sh(odd, "chown dev: /etc/wsl.conf")
    before = sha256(odd, "/etc/wsl.conf", WSLCONFIG)

    plans = gotune("plan", str(box.inventory))["hosts"]
    odd_plan, off_plan = by_key(plans["sbx1"]["decisions"]), by_key(plans["sbx2"]["decisions"])
    assert "belongs to uid" in odd_plan["wsl.conf"]["details"]["refused"]
    assert f"{WSLCONFIG} line 2 ('memory 8GB')" in odd_plan[".wslconfig"]["details"]["refused"]
    assert not odd_plan["wsl.conf"]["change"] and not odd_plan[".wslconfig"]["change"]
    assert "interop off" in off_plan[".wslconfig"]["reason"]
    assert "set gotune_wsl_windows_profile" in off_plan[".wslconfig"]["details"]["refused"]
    assert off_plan["wsl.conf"]["change"]  # wsl.conf is Linux's: it needs no interop
    assert "appendWindowsPath not measured" in off_plan["wsl.conf"]["reason"]

    applied = gotune("apply", str(box.inventory), "--yes", "--no-verify")["hosts"]
    assert applied["sbx1"]["ok"] and applied["sbx2"]["ok"]
    assert sha256(odd, "/etc/wsl.conf", WSLCONFIG) == before
    assert sh(odd, "ls -a /etc '/mnt/c/Users/Dev User'").count("gotune-new") == 0
    assert sh(odd, "test -e /run/gotune/wsl-restart-needed || echo none") == "none\n"
    assert sh(no_interop, "test -e /mnt/c || echo 'no drive'") == "no drive\n"
    assert b"systemd=true" in read(no_interop, "/etc/wsl.conf")
