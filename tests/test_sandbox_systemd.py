"""Sandbox hosts that boot systemd: a real PID 1 that reboots, powers off and crashes,
reachable like any sandbox host, and gone without a trace afterwards."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import SandboxFactory
from tests.sandbox import (
    Sandbox,
    SandboxHost,
    missing_requirement,
    missing_systemd_requirement,
)
from tests.sandbox_cgroups import PARENT, hierarchies
from tests.sandbox_mounts import GOROOT_INSIDE, REPO
from tests.sandbox_state import allocation_lock, clean_stale
from tests.sandbox_storage import Hdd, Slow9p, Storage
from tests.sandbox_storage import missing_requirement as missing_storage
from tests.test_sandbox import processes_mounting, running

pytestmark = [pytest.mark.sandbox, pytest.mark.systemd]


def skip_unless_available(*storage: Storage) -> None:
    """For tests that start a Sandbox themselves (the fixture skips on its own); builds
    the rootfs when it is missing, as the fixture does, and never at collection."""
    reason = missing_requirement() or missing_systemd_requirement()
    reason = reason or (missing_storage(list(storage)) if storage else None)
    if reason:
        pytest.skip(reason)


# A unit that leaves a mark when it is stopped: clean shutdowns run ExecStop=, crashes do not.
STOP_MARK_UNIT = """[Unit]
Description=leaves a mark at shutdown
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
ExecStop=/bin/sh -c 'echo stopped >> /var/lib/stop-marks'
[Install]
WantedBy=multi-user.target
"""


def gotune_facts(inventory: Path) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-m", "gotune", "facts", str(inventory), "--json"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)  # fmt: skip
    assert out.returncode == 0, out.stderr
    facts: dict[str, object] = json.loads(out.stdout)["hosts"]["sbx1"]
    return facts


def stop_marks(host: SandboxHost) -> int:
    out = host.run("cat /var/lib/stop-marks 2>/dev/null | wc -l")
    return int(out.stdout.strip())


def test_systemd_host_runs_systemd_as_pid_1_and_gotune_sees_a_systemd_machine(
    sandbox: SandboxFactory,
) -> None:
    box = sandbox(1, systemd=True)
    host = box.hosts[0]
    out = host.run("systemctl is-system-running; cat /proc/1/comm; hostname; systemctl --failed"
                   " --no-legend; systemd-detect-virt")  # fmt: skip
    # No failed unit (the list is empty), and systemd knows it is in a container.
    assert out.stdout.split("\n") == ["running", "systemd", host.hostname, "systemd-nspawn", ""]
    platform = gotune_facts(box.inventory)["platform"]
    assert isinstance(platform, dict) and platform["systemd"] is True
    assert host.start_seconds is not None and host.start_seconds < 30


def test_files_survive_reboots_and_poweroff_which_stop_units_cleanly_and_a_crash_does_not(
    sandbox: SandboxFactory,
) -> None:
    host = sandbox(1, systemd=True).hosts[0]
    made = host.run(
        f"printf %s {shlex.quote(STOP_MARK_UNIT)} > /etc/systemd/system/mark.service"
        " && systemctl enable --now mark.service && echo kept > /root/kept"
    )
    assert made.returncode == 0, made.stderr

    boots = host.boots
    host.run("systemctl reboot")  # from inside
    host.wait_booted(boots)
    assert stop_marks(host) == 1
    assert "Reached target" in host.run("journalctl -b -1 -o cat | tail -50").stdout

    host.reboot()  # from the test (SIGRTMIN+5, as a power button or machinectl would)
    assert stop_marks(host) == 2

    host.poweroff()  # from the test (SIGRTMIN+4)
    assert host.process is not None and host.process.returncode == 0
    assert host.run("true").returncode != 0  # off: nothing answers
    host.boot()
    assert stop_marks(host) == 3

    host.run("systemctl poweroff")  # from inside
    host.wait_stopped()
    host.boot()
    assert stop_marks(host) == 4

    host.crash()  # the plug pulled: no unit is stopped
    host.boot()
    assert stop_marks(host) == 4
    assert host.run("cat /root/kept").stdout == "kept\n"
    assert host.boots == 6 and len(host.boot_seconds) == 6


def test_a_developer_runs_the_harness_go_on_plain_and_systemd_hosts(
    sandbox: SandboxFactory,
) -> None:
    hosts = sandbox(2, systemd=[False, True]).hosts
    assert not Path(GOROOT_INSIDE).is_relative_to(REPO)
    for host in hosts:
        host.add_user("dev")
        host.link_go()
        out = host.run("go version && go env GOROOT && touch /opt/gotune-sandbox/go/x", user="dev")
        assert out.stdout.startswith("go version go1.") and GOROOT_INSIDE in out.stdout
        assert out.returncode != 0 and "Read-only file system" in out.stderr  # shared: read-only


def test_recorded_profile_shows_on_a_systemd_host(sandbox: SandboxFactory) -> None:
    host = sandbox(1, profiles=["64fake-4n2s2ca2c2t"], systemd=True).hosts[0]
    out = host.run("numactl --hardware; systemctl is-system-running")
    assert "available: 4 nodes (0-3)" in out.stdout and out.stdout.endswith("running\n")


def leftovers(host_dirs: list[Path], loops: list[str]) -> list[str]:
    """What is left of some hosts on this machine: processes, mounts, cgroups, loops, dirs."""
    found = [f"mounted in {pid}" for d in host_dirs for pid in processes_mounting(d)]
    for root in {str(p) for p in hierarchies().values()}:
        for d in (
            host_dirs
        ):  # SANDBOX_ROOT/<session>/<run>/<host>: gotune-sandbox/<session>/<run>-<host>
            cgroup = Path(root) / PARENT / d.parent.parent.name / f"{d.parent.name}-{d.name}"
            found += [str(cgroup)] if cgroup.exists() else []
    found += [loop for loop in loops if Path(f"/sys/block/{Path(loop).name}/loop").exists()]
    found += [str(d) for d in host_dirs if d.exists()]
    found += [f"slowfs {p}" for p in pids_running(str(d) for d in host_dirs)]
    return found


def pids_running(paths: object) -> list[int]:
    wanted = list(paths)  # type: ignore[call-overload]
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if any(w in cmd for w in wanted):
                found.append(int(entry.name))
    return found


@pytest.mark.slowstorage
def test_teardown_leaves_no_processes_mounts_cgroups_loops_fuse_daemons_or_dirs() -> None:
    specs: list[Storage] = [Slow9p(), Hdd()]
    skip_unless_available(*specs)
    with Sandbox(2, systemd=[True, False], storage=specs) as box:
        dirs = [h.dir for h in box.hosts]
        loops = [d.loop for h in box.hosts for d in (h.prepared.disks if h.prepared else [])]
        assert len(loops) == 2 and leftovers(dirs, loops) != []
        assert len(pids_running(str(d) for d in dirs)) >= 2  # the FUSE daemons
        procs = set().union(*(h.cgroups.procs() for h in box.hosts if h.cgroups))
    assert leftovers(dirs, loops) == []
    assert not any(running(pid) for pid in procs)


KILLED = textwrap.dedent(
    """
    import time
    from tests.sandbox import Sandbox
    with Sandbox(1, systemd=True, storage=["hdd"]) as box:
        host = box.hosts[0]
        print(host.dir, host.init_pid(), host.prepared.disks[0].loop, flush=True)
        time.sleep(600)
    """
)


@pytest.mark.slowstorage
def test_a_killed_test_process_takes_its_container_along_and_the_next_run_cleans_the_rest() -> None:
    skip_unless_available(Hdd())
    proc = subprocess.Popen([sys.executable, "-c", KILLED], cwd=REPO, stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    assert proc.stdout is not None
    host_dir, init, loop = proc.stdout.readline().split()
    with allocation_lock():  # no other run cleans up before this test looks
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while running(int(init)) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not running(int(init))  # pdeathsig, then the PID namespace took the container
        assert Path(host_dir).exists()  # what only a cleanup can remove is still there
        clean_stale()
    assert leftovers([Path(host_dir)], [loop]) == []
