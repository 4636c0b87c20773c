"""gotune's systemd units under a real systemd: hosts that boot, reboot, power off and crash.

Every unit gotune installs is started here by systemd itself (sandbox hosts with
``systemd=True``), through gotune's CLI only, and checked over SSH:

- the tmpfs GOCACHE: ``<mountpoint>.mount``, ``gotune-gocache-<user>.service``
  (restore at boot, save at shutdown) and ``gotune-gocache-save-<user>.timer`` /
  ``.service`` (save every ``gotune_snapshot_minutes``) — a reboot, a poweroff
  and a crash of the host, with a build before and after;
- ``gotune-mirror.service``: its user and sandboxing, a restart after ``kill -9``,
  up after a reboot;
- ``gotune-wear.timer`` / ``.service``: it fires and records;
- a second apply changes nothing; undo leaves no unit, mount or file of gotune.

A timer's schedule is minutes to an hour; the tests that need one to fire now
add a drop-in under /run (gone at the next boot) that changes only when it
fires, never what it runs.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SandboxFactory
from tests.goproxy_tree import APP_GOMOD, APP_MAIN, StaticUpstream, build_tree, standard_modules
from tests.sandbox import SandboxHost
from tests.sandbox_storage import Hdd
from tests.test_apply import gotune
from tests.test_wear_sandbox import FAKE_SMARTCTL, drive_at, put

pytestmark = [pytest.mark.sandbox, pytest.mark.systemd, pytest.mark.slow]

USER = "dev"
HELLO = (
    "mkdir -p ~/hello && cd ~/hello && printf 'module hello\\n\\ngo 1.21\\n' > go.mod && "
    "printf 'package main\\nfunc main() { println(42) }\\n' > main.go"
)
# A second package that only the build after the last save compiles.
LATE = (
    "mkdir -p ~/late && cd ~/late && printf 'module late\\n\\ngo 1.21\\n' > go.mod && "
    "printf 'package main\\nimport \"container/list\"\\n"
    "func main() { println(list.New().Len()) }\\n' > main.go"
)
# A cache entry big enough that saving it takes a while (the crash lands mid-save).
BIG_ENTRY_MIB = 200


def sh(host: SandboxHost, cmd: str, user: str = "root", timeout: float = 180) -> str:
    out = host.run(cmd, user=user, timeout=timeout)
    assert out.returncode == 0, f"{cmd}: {out.stdout[-1500:]} {out.stderr[-1500:]}"
    return out.stdout


def apply(inventory: Path) -> dict[str, Any]:
    out = gotune("apply", str(inventory), "--yes", "--json", "--no-verify")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout)["hosts"]["sbx1"]
    assert result["ok"], result
    return result


def undo(inventory: Path) -> dict[str, Any]:
    out = gotune("undo", str(inventory), "--yes", "--json")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout)["hosts"]["sbx1"]
    return result


def compiled(host: SandboxHost, project: str = "hello") -> int:
    """How many packages ``go build`` compiled (0: everything came from GOCACHE)."""
    out = sh(host, f"cd ~/{project} && go build -x -o /dev/null . 2>&1 | grep -c /compile || true",
             user=USER)  # fmt: skip
    return int(out.strip())


def active(host: SandboxHost, unit: str) -> str:
    return host.run(f"systemctl is-active {shlex.quote(unit)}").stdout.strip()


def show(host: SandboxHost, unit: str, *props: str) -> dict[str, str]:
    """``systemctl show`` properties; one listed several times (timers) joined by newlines."""
    args = " ".join(f"-p {p}" for p in props)
    found: dict[str, list[str]] = {}
    for line in sh(host, f"systemctl show {shlex.quote(unit)} {args}").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            found.setdefault(key, []).append(value)
    return {key: "\n".join(values) for key, values in found.items()}


def fire_now(host: SandboxHost, timer: str, every: str | None = None) -> None:
    """A drop-in under /run that makes ``timer`` elapse in a second (and every ``every``)."""
    again = f"OnUnitActiveSec={every}\n" if every else ""
    text = (f"[Timer]\nOnCalendar=\nOnBootSec=\nOnUnitActiveSec=\nOnActiveSec=1s\n{again}"
            "RandomizedDelaySec=0\nAccuracySec=100ms\n")  # fmt: skip
    d = f"/run/systemd/system/{timer}.d"
    sh(host, f"mkdir -p {d} && printf %s {shlex.quote(text)} > {d}/zz-test-now.conf && "
             f"systemctl daemon-reload && systemctl restart {timer}")  # fmt: skip


def drop_test_overrides(host: SandboxHost) -> None:
    sh(host, "rm -rf /run/systemd/system/*.d && systemctl daemon-reload")


def wait_for(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def saving_tar(host: SandboxHost) -> int | None:
    """The PID (on this machine) of the tar a GOCACHE save runs, once it has written data."""
    for pid in host.cgroups.procs() if host.cgroups else ():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        partial = next((a for a in argv if a.endswith(".gotune-new")), None)
        if argv[0].endswith("tar") and partial is not None:
            written = host.written(partial)
            if written.exists() and written.stat().st_size > 0:
                return pid
    return None


def gotune_traces(host: SandboxHost) -> str:
    """Everything of gotune a host has: units, mounts, files, accounts (the harness's own
    left out)."""
    return sh(
        host,
        "getent passwd | grep '^gotune' | cut -d: -f1; getent group | grep '^gotune' | cut -d: -f1;"
        " systemctl list-unit-files --no-legend 'gotune*'; systemctl list-units --all --no-legend"
        " 'gotune*'; findmnt -rn -o TARGET,FSTYPE | grep -v '^/proc\\|^/sys\\|^/dev' | sort;"
        " find /etc /usr/local /opt /var/lib /var/cache /var/log /home -xdev -iname '*gotune*'"
        " ! -path '/etc/gotune-sandbox*' ! -path '/opt/gotune-sandbox*' 2>/dev/null | sort",
    )


def developer(host: SandboxHost) -> None:
    host.add_user(USER)
    host.link_go()
    goenv = "GOTOOLCHAIN=local\\nGOFLAGS=-mod=mod\\nGOSUMDB=off\\n"
    sh(host, f"mkdir -p ~/.config/go && printf '{goenv}' > ~/.config/go/env && {HELLO} && {LATE}",
       user=USER)  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_tmpfs_gocache_survives_reboot_poweroff_and_a_crash_loses_only_what_came_after_a_save(
    sandbox: SandboxFactory,
) -> None:
    data = {"gotune_users": [USER], "gotune_gocache_tmpfs": "always", "gotune_tmpfs_max_gib": 1,
            "gotune_snapshot_minutes": 1}  # fmt: skip
    box = sandbox(1, data=[data], systemd=True)
    host = box.hosts[0]
    developer(host)

    result = apply(box.inventory)
    gocache = next(d for d in result["plan"]["decisions"] if d["key"] == "GOCACHE")
    mp, snapshot = gocache["details"]["mountpoint"], gocache["details"]["snapshot"]
    mount = sh(host, f"systemd-escape --path --suffix=mount {mp}").strip()
    snap_unit, save_timer = f"gotune-gocache-{USER}.service", f"gotune-gocache-save-{USER}.timer"
    save_unit = f"gotune-gocache-save-{USER}.service"
    assert [active(host, u) for u in (mount, snap_unit, save_timer)] == ["active"] * 3
    # The save timer's own schedule: at most gotune_snapshot_minutes between saves.
    assert "OnUnitActiveUSec=1min" in show(host, save_timer, "TimersMonotonic")["TimersMonotonic"]

    assert compiled(host) > 0  # a cold build fills the tmpfs cache
    assert compiled(host) == 0

    # Reboot from inside: ExecStop= saves, the tmpfs goes, boot mounts it and restores.
    boots = host.boots
    host.run("systemctl reboot")
    host.wait_booted(boots)
    assert active(host, mount) == "active" and active(host, snap_unit) == "active"
    assert compiled(host) == 0
    previous_boot = sh(host, f"journalctl -b -1 -u {snap_unit} -o cat")
    assert "Stopped" in previous_boot and "GOCACHE snapshot" in previous_boot  # ExecStop= ran

    # Power off from the test (as the power button would) and boot again: the same.
    host.poweroff()
    host.boot()
    assert compiled(host) == 0

    # A crash loses what was built after the last save, and nothing before it.
    last_save = show(host, save_unit, "ExecMainExitTimestampMonotonic")
    fire_now(host, save_timer)
    wait_for("the timer's save", lambda: show(host, save_unit, "ExecMainExitTimestampMonotonic")
             != last_save)  # fmt: skip
    assert show(host, save_unit, "Result")["Result"] == "success"
    sh(host, f"systemctl stop {save_timer}")  # no save from now on, as between two saves
    assert compiled(host, "late") > 0
    host.crash()
    host.boot()
    assert compiled(host) == 0  # saved: restored
    assert compiled(host, "late") > 0  # built after the last save: lost, and rebuilt fine

    # A crash in the middle of a save leaves the previous snapshot whole.
    before = sh(host, f"tar -tf {snapshot} | sort | sha256sum")
    entry = f"{gocache['value']}/ff/big-entry-d"
    sh(host, f"head -c {BIG_ENTRY_MIB}M /dev/urandom > {entry}", user=USER)
    partial = host.written(snapshot + ".gotune-new")
    sh(host, f"systemctl start --no-block {save_unit}")
    # Freeze the save's tar as soon as it runs (whatever the machine's speed), then crash.
    tar = wait_for("the save's tar", lambda: saving_tar(host), timeout=10)
    os.kill(tar, signal.SIGSTOP)
    host.crash()
    assert 0 < partial.stat().st_size < BIG_ENTRY_MIB << 20  # it was cut short
    host.boot()
    assert sh(host, f"tar -tf {snapshot} | sort | sha256sum") == before
    assert compiled(host) == 0
    assert sh(host, f"test -e {entry} || echo gone") == "gone\n"


def test_mirror_and_wear_units_run_under_systemd_and_undo_removes_every_trace(
    sandbox: SandboxFactory, tmp_path: Path
) -> None:
    tree = build_tree(tmp_path / "upstream", standard_modules(big_bytes=64 << 10))
    port = free_port()
    with StaticUpstream(tree) as up:
        data = {"gotune_users": [USER], "gotune_gocache_tmpfs": "always",
                "gotune_tmpfs_max_gib": 1, "gotune_mirror_enabled": True,
                "gotune_mirror_port": port, "gotune_mirror_upstream": up.url}  # fmt: skip
        box = sandbox(1, data=[data], systemd=True)
        host = box.hosts[0]
        developer(host)
        sh(host, f"mkdir -p ~/app && cd ~/app && printf %s {shlex.quote(APP_GOMOD)} > go.mod && "
                 f"printf %s {shlex.quote(APP_MAIN)} > main.go", user=USER)  # fmt: skip
        clean = gotune_traces(host)

        first = apply(box.inventory)
        assert first["changed"] > 0
        mirror, wear_timer, wear = (
            "gotune-mirror.service",
            "gotune-wear.timer",
            "gotune-wear.service",
        )
        assert active(host, mirror) == "active" and active(host, wear_timer) == "active"

        # The mirror serves the developer's go, as its own user, sandboxed.
        sh(host, "cd ~/app && go build -o /dev/null .", user=USER)
        assert up.count("/example.com/multi/v2/@v/v2.1.0.zip") == 1
        props = show(host, mirror, "MainPID", "User", "ProtectSystem", "NoNewPrivileges",
                     "CapabilityBoundingSet", "NRestarts")  # fmt: skip
        assert props["User"] == "gotune-mirror" and props["ProtectSystem"] == "strict"
        pid = props["MainPID"]
        status = sh(host, f"cat /proc/{pid}/status")
        uid = sh(host, "id -u gotune-mirror").strip()
        assert f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}" in status
        assert "CapEff:\t0000000000000000" in status and "NoNewPrivs:\t1" in status
        assert "Seccomp:\t2" in status  # SystemCallArchitectures= and friends: a filter
        denied = host.run(f"nsenter -t {pid} -m touch /etc/gotune-probe")
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr

        # kill -9: systemd starts it again (Restart=on-failure).
        sh(host, f"kill -9 {pid}")
        wait_for("the mirror's restart", lambda: show(host, mirror, "MainPID")["MainPID"]
                 not in ("0", pid) and active(host, mirror) == "active")  # fmt: skip
        assert show(host, mirror, "NRestarts")["NRestarts"] == "1"

        # The wear timer: hourly; made to fire now, it runs the check, which records.
        assert show(host, wear_timer, "TimersCalendar")["TimersCalendar"].startswith(
            "{ OnCalendar=*-*-* *:00:00 ;"
        )
        # An NVMe drive that smartctl (a stand-in: this VM has a virtio disk) reports.
        put(host, "/usr/local/sbin/smartctl", FAKE_SMARTCTL, mode="755")
        drive_at(host, 81, 2_000_000)
        fire_now(host, wear_timer)
        wait_for("the wear check", lambda: show(host, wear, "ExecMainExitTimestamp")[
            "ExecMainExitTimestamp"] != "")  # fmt: skip
        assert show(host, wear, "Result")["Result"] == "success"
        history = sh(host, "cat /var/lib/gotune/wear/history.jsonl").splitlines()
        assert [json.loads(r)["percentage_used"] for r in history if "S6X1NF0R700123" in r] == [81]
        sh(
            host,
            "rm -r /usr/local/sbin/smartctl /var/lib/fake-smart",
        )
        drop_test_overrides(host)

        # After a reboot: the mirror is up again, the timer waits for its hour.
        host.reboot()
        assert active(host, mirror) == "active" and active(host, wear_timer) == "active"
        sh(host, "cd ~/app && go clean -modcache && go build -o /dev/null .", user=USER)

        second = apply(box.inventory)
        assert second["changed"] == 0, second

        undone = undo(box.inventory)
        assert undone["ok"], undone
        assert sh(host, "systemctl list-units --all --no-legend 'gotune*'") == ""
        assert gotune_traces(host) == clean
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0  # the mirror is gone


@pytest.mark.slowstorage
def test_mirror_with_its_cache_on_a_separate_home_disk_runs_and_sees_no_home(
    sandbox: SandboxFactory,
) -> None:
    """/home on its own disk: the plan puts the mirror's cache there, beside GOMODCACHE.
    ProtectHome=yes hid it from the mirror, which then failed at every restart."""
    port = free_port()
    data = {"gotune_users": [USER], "gotune_gocache_tmpfs": "never",
            "gotune_mirror_enabled": True, "gotune_mirror_port": port}  # fmt: skip
    box = sandbox(1, data=[data], systemd=True, storage=[Hdd(path="/home")])
    host = box.hosts[0]
    developer(host)
    result = apply(box.inventory)
    cache = next(d for d in result["plan"]["decisions"] if d["key"] == "mirror")["value"]
    assert cache.startswith("/home/")
    mirror = "gotune-mirror.service"
    health = wait_for("the mirror to answer", lambda: get_json(f"http://127.0.0.1:{port}/healthz"))
    assert health["cache_dir"] == cache
    assert show(host, mirror, "NRestarts")["NRestarts"] == "0"
    pid = show(host, mirror, "MainPID")["MainPID"]
    # Inside its namespace /home holds only the path to its cache: no developer's files.
    assert sh(host, f"nsenter -t {pid} -m ls /home").split() == [cache.split("/")[2]]
    assert undo(box.inventory)["ok"]


def get_json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            found: dict[str, Any] = json.loads(r.read())
            return found
    except (OSError, ValueError):
        return None
