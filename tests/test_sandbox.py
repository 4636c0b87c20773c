"""Sandbox hosts: isolated, reachable by pyinfra, able to pose as a recorded machine,
and gone without a trace afterwards."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import SandboxFactory
from tests.sandbox import Sandbox, missing_requirement
from tests.sandbox_machine import hide_machine_gotune
from tests.sandbox_state import (
    SANDBOX_ROOT,
    allocation_lock,
    claimed_addresses,
    clean_stale,
    free_addresses,
    names_root,
)

UNAVAILABLE = missing_requirement()
pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or ""),
]

REPO = Path(__file__).resolve().parent.parent
PYINFRA = Path(sys.executable).parent / "pyinfra"


def numa_nodes(numactl_output: str) -> int:
    found = re.search(r"^available: (\d+) nodes", numactl_output, re.MULTILINE)
    assert found, numactl_output
    return int(found.group(1))


def processes_mounting(path: Path) -> list[int]:
    """PIDs whose mount table mentions ``path`` (any namespace).

    A chrooted process sees its own root as "/", but the overlay's options still
    name the host's upper and work dirs, so a host dir is found through them.
    """
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if str(path) in Path(f"/proc/{entry.name}/mountinfo").read_text():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_file_written_on_one_host_is_absent_on_another_and_on_this_machine(
    sandbox: SandboxFactory,
) -> None:
    first, second = sandbox(2).hosts
    token = os.urandom(6).hex()
    # One path on the overlay's own disk, one inside this checkout (also in the lower layer).
    paths = [f"/var/lib/sandbox-probe-{token}", str(REPO / "tests" / f".sandbox-probe-{token}")]
    for path in paths:
        assert first.run(f"echo hello > {path} && cat {path}").stdout == "hello\n"
        assert second.run(f"test -e {path}").returncode == 1
        assert not Path(path).exists()
        assert first.written(path).read_text() == "hello\n"


def test_each_host_has_its_own_hostname(sandbox: SandboxFactory) -> None:
    hosts = sandbox(2).hosts
    names = [h.run("hostname").stdout.strip() for h in hosts]
    assert names == [h.hostname for h in hosts]
    assert len(set(names)) == 2
    assert socket.gethostname() not in names


def test_pyinfra_operation_changes_only_the_host_it_targets(sandbox: SandboxFactory) -> None:
    box = sandbox(2)
    target = f"/root/pyinfra-made-{os.urandom(6).hex()}"
    out = subprocess.run(
        [str(PYINFRA), "-y", "--limit", "sbx1", str(box.inventory), "files.file",
         f"path={target}", "mode=600"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    first, second = box.hosts
    assert first.run(f"stat -c %a {target}").stdout == "600\n"
    assert second.run(f"test -e {target}").returncode == 1
    assert not Path(target).exists()


def test_inventory_carries_extra_host_data_to_pyinfra(sandbox: SandboxFactory) -> None:
    box = sandbox(2, data=[{"gotune_users": ["dev"]}, {"gotune_users": []}])
    # In a child process: importing pyinfra's CLI gevent-patches the whole process,
    # which must not happen halfway through a pytest session that runs threads.
    probe = textwrap.dedent(
        """
        import json, sys
        from gotune.inventory import load_inventory
        inv = load_inventory(sys.argv[1])
        print(json.dumps({h.name: [h.data.gotune_users, h.data.ssh_hostname] for h in inv}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(box.inventory)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    hosts = json.loads(out.stdout)
    assert sorted(hosts) == ["sbx1", "sbx2"]
    assert hosts["sbx1"] == [["dev"], box.hosts[0].address]
    assert hosts["sbx2"][0] == []


def test_four_node_profile_shows_four_nodes_to_numactl_and_a_plain_host_one(
    sandbox: SandboxFactory,
) -> None:
    plain, four = sandbox(2, profiles=[None, "64fake-4n2s2ca2c2t"]).hosts
    assert numa_nodes(four.run("numactl --hardware").stdout) == 4
    assert numa_nodes(plain.run("numactl --hardware").stdout) == 1
    assert "/sys/devices/system/node" in four.overlaid
    assert plain.overlaid == []
    # The recorded machine's 64 CPUs, not this one's.
    assert four.run("ls -d /sys/devices/system/cpu/cpu[0-9]* | wc -l").stdout.strip() == "64"


def test_profile_with_devices_and_dmi_shows_the_recorded_machine(sandbox: SandboxFactory) -> None:
    (host,) = sandbox(1, profiles=["32em64t-2n8c+dax+nvme+mic+dimms"]).hosts
    out = host.run(
        "cat /sys/class/dmi/id/product_name; ls /sys/class/net;"
        " grep -m1 'model name' /proc/cpuinfo; readlink -f /sys/class/block/sda"
    )
    assert out.returncode == 0, out.stderr
    assert "DCS8000Z" in out.stdout
    assert "ib0" in out.stdout.split()
    assert "E5-2680" in out.stdout
    # The tree's symlinks resolve inside the tree's own device hierarchy.
    assert "/sys/devices/pci0000:00/0000:00:1f.2/" in out.stdout
    # Still a working host: cgroups of the real kernel stay visible.
    assert host.run("test -d /sys/fs/cgroup && ls /sys/fs/cgroup").stdout.strip()


def test_added_user_logs_in_with_a_home_that_exists_only_in_that_host(
    sandbox: SandboxFactory,
) -> None:
    first, second = sandbox(2).hosts
    passwd_before = Path("/etc/passwd").read_bytes()
    first.add_user("gotunedev")
    first.add_user("gotunedev")  # a second call changes nothing
    out = first.run('id -un; echo "$HOME"; test -w "$HOME" && echo writable', user="gotunedev")
    assert out.stdout.split() == ["gotunedev", "/home/gotunedev", "writable"]
    assert second.run("id gotunedev").returncode != 0
    assert Path("/etc/passwd").read_bytes() == passwd_before


def test_bad_user_and_profile_names_are_refused(sandbox: SandboxFactory) -> None:
    (host,) = sandbox(1).hosts
    with pytest.raises(ValueError, match="bad user name"):
        host.run("true", user="-oProxyCommand=x")
    with pytest.raises(ValueError, match=r"unknown sandbox profile '\.\./x'"):
        sandbox(1, profiles=["../x"])


def test_an_address_in_use_is_skipped(sandbox: SandboxFactory) -> None:
    with allocation_lock():
        address, port = free_addresses(1, claimed_addresses())[0]
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((address, port))
        squatter.listen()
        (host,) = sandbox(1).hosts
        assert (host.address, host.port) != (address, port)
        assert host.run("true").returncode == 0


def test_teardown_leaves_no_processes_mounts_or_dirs() -> None:
    with Sandbox(2, profiles=[None, "64fake-4n2s2ca2c2t"]) as box:
        # A daemon the host started itself outlives its ssh session; teardown must find it.
        daemon = box.hosts[1].run("setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $!")
        pids = {h.pid for h in box.hosts} | {int(daemon.stdout)}
        run_dir = box.hosts[0].dir.parent
        dirs = [h.dir for h in box.hosts]
        assert all(running(pid) for pid in pids if pid is not None)
        assert all(processes_mounting(d) for d in dirs)
    assert not any(running(pid) for pid in pids if pid is not None)
    assert not any(processes_mounting(d) for d in dirs)
    assert not run_dir.exists()


INTERRUPTED = textwrap.dedent(
    """
    import os, sys, time
    from tests.sandbox import Sandbox
    with Sandbox(1) as box:
        host = box.hosts[0]
        daemon = host.run("setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $!").stdout.strip()
        print(host.dir, host.pid, daemon, flush=True)
        time.sleep(600)
    """
)


def start_child() -> tuple[subprocess.Popen[str], Path, list[int]]:
    """A test process that has started a host with a daemon in it, and now waits."""
    proc = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert len(line) == 3, "the child did not start its host"
    return proc, Path(line[0]), [int(line[1]), int(line[2])]


def test_sigterm_during_a_run_tears_the_hosts_down() -> None:
    proc, host_dir, pids = start_child()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert not host_dir.exists()
    assert not any(running(pid) for pid in pids)
    assert not processes_mounting(host_dir)


def test_leftovers_of_a_killed_run_are_cleaned_next_time_and_nothing_else() -> None:
    proc, host_dir, (sshd, daemon) = start_child()
    # A directory whose owner cannot be proven is someone else's business.
    foreign = SANDBOX_ROOT / f"s-foreign-{os.getpid()}"
    foreign.mkdir()
    try:
        # The lock keeps parallel test runs from cleaning up before this test looks.
        with allocation_lock():
            proc.kill()
            proc.wait(timeout=30)
            # SIGKILL leaves no chance to clean up: sshd dies with its parent, the daemon lives.
            deadline = time.monotonic() + 5
            while running(sshd) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert not running(sshd)
            assert running(daemon)
            assert host_dir.exists()
            removed = clean_stale()
        session_dir = host_dir.parent.parent
        assert session_dir in removed
        assert not session_dir.exists()
        assert not running(daemon)
        assert not processes_mounting(host_dir)
        assert foreign.exists()
    finally:
        foreign.rmdir()


def test_a_machine_without_etc_hosts_still_gets_host_names(tmp_path: Path) -> None:
    # A debootstrap minbase machine has no /etc/hosts (issue #12): the harness makes one.
    from tests.sandbox import etc_hosts

    text = etc_hosts("127.0.0.11", "sbx1-11", machine=tmp_path / "missing")
    assert text.startswith("127.0.0.1\tlocalhost\n") and text.endswith("127.0.0.11\tsbx1-11\n")


def test_a_root_is_recognised_seen_from_the_machine_or_from_inside_a_chroot() -> None:
    root = "/var/tmp/gotune-sandbox/s1-ab/r2/sbx1/root"
    assert names_root(root, root) and names_root(root + "/srv/jail", root)
    # the fresh-machine check's chroot: the machine's path to the chroot comes first
    assert names_root("/var/tmp/gotune-fresh.x/rootfs" + root, root)
    assert not names_root(root + "2", root) and not names_root("/", root)
    assert not names_root("x" + root, root)


def test_what_gotune_left_on_this_machine_is_hidden_from_a_host(tmp_path: Path) -> None:
    """A machine its developer tuned (a stand-in tree: this machine is never touched):
    a host's upper layer gets overlayfs whiteouts for gotune's paths and an fstab
    without gotune's lines, and everything else is left to the lower layer."""
    machine, upper = tmp_path / "machine", tmp_path / "upper"
    for d in ("var/lib/gotune/undo", "etc/cron.d", "etc/systemd/system/multi-user.target.wants",
              "etc/ssh"):
        (machine / d).mkdir(parents=True)
    (machine / "var").chmod(0o751)
    (machine / "etc/cron.d/gotune-wear").write_text("x\n")
    (machine / "etc/cron.d/e2scrub_all").write_text("x\n")
    unit = "var-cache-gotune-tmpfs-alice.mount"
    (machine / "etc/systemd/system" / unit).write_text("[Mount]\n")
    (machine / "etc/systemd/system/multi-user.target.wants" / unit).symlink_to(f"../{unit}")
    (machine / "etc/fstab").write_text("UUID=1 / ext4 defaults 0 1\ntmpfs /var/cache/gotune/"
                                       "tmpfs/alice tmpfs size=1024m,uid=1000 0 0\n")
    upper.mkdir()
    hidden = hide_machine_gotune(upper, machine)
    whiteouts = {str(p.relative_to(upper)) for p in upper.rglob("*") if p.is_char_device()}
    assert whiteouts == {"var/lib/gotune", "etc/cron.d/gotune-wear", f"etc/systemd/system/{unit}",
                         f"etc/systemd/system/multi-user.target.wants/{unit}"}
    assert all(os.stat(upper / w).st_rdev == 0 for w in whiteouts)
    assert (upper / "etc/fstab").read_text() == "UUID=1 / ext4 defaults 0 1\n"
    assert (upper / "var").stat().st_mode & 0o777 == 0o751  # as the lower layer has it
    assert not (upper / "etc/cron.d/e2scrub_all").exists() and len(hidden) == 5

    # With the undo records of `gotune apply` (as the README's Quick start leaves them):
    # what gotune made is hidden, what it changed is put back as it was.
    def record(kind: str, path: str, saved: str | None = None) -> None:
        (machine / "var/lib/gotune/undo" / kind).mkdir(exist_ok=True)
        name = path.encode().hex() + (".absent" if kind == "files" and saved is None else "")
        (machine / "var/lib/gotune/undo" / kind / name).write_text(saved or "")

    for d in ("root/.config/go", "home/alice/.cache/gotune", "usr/local/sbin"):
        (machine / d).mkdir(parents=True)
    (machine / "root/.config/go/env").write_text("GOCACHE=/var/cache/gotune/tmpfs/root\n")
    (machine / "usr/local/sbin/gotune-gocache").write_text("#!/bin/sh\n")
    record("files", "/root/.config/go/env")
    record("files", "/etc/fstab", "UUID=1 / ext4 defaults 0 1\n# as it was\n")
    record("created", "/home/alice/.cache/gotune")
    record("files", "/var/lib/gotune/plan.json")  # below a hidden directory: nothing more
    (machine / "var/lib/gotune/undo/created/not-hex").write_text("")  # damaged: skipped
    again = tmp_path / "again"
    again.mkdir()
    hidden = hide_machine_gotune(again, machine)
    whiteouts = {str(p.relative_to(again)) for p in again.rglob("*") if p.is_char_device()}
    assert whiteouts == {"var/lib/gotune", "etc/cron.d/gotune-wear", f"etc/systemd/system/{unit}",
                         f"etc/systemd/system/multi-user.target.wants/{unit}",
                         "root/.config/go/env", "home/alice/.cache/gotune",
                         "usr/local/sbin/gotune-gocache"}
    assert (again / "etc/fstab").read_text() == "UUID=1 / ext4 defaults 0 1\n# as it was\n"
    assert "/etc/fstab (as before gotune)" in hidden
    # an untuned machine: nothing hidden, nothing written
    clean, empty = tmp_path / "clean", tmp_path / "empty"
    (clean / "etc").mkdir(parents=True)
    (clean / "etc/fstab").write_text("UUID=1 / ext4 defaults 0 1\n")
    empty.mkdir()
    assert hide_machine_gotune(empty, clean) == [] and list(empty.iterdir()) == []
