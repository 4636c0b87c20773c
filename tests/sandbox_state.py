"""What sandbox sessions leave on disk, which processes are theirs, and cleaning up.

A session (one Python process using sandbox hosts) owns ``SANDBOX_ROOT/s<pid>-<id>/``
with ``owner.json`` (its PID and start time) and one ``host.json`` per host (its
address, launcher PID and start time, mount namespace and root). Those records
are the only proof used to stop processes or remove dirs: PID plus start time
names one process even after the PID is reused, and a host's processes are the
ones in its mount namespace whose root is its root.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# On the real disk, not /tmp: the overlay's upper and work dirs must share one
# filesystem that supports overlay upper layers, and /tmp may be a tmpfs elsewhere.
SANDBOX_ROOT = Path("/var/tmp/gotune-sandbox")
# Unpacked profiles go to a tmpfs when there is one (see sandbox.profile_cache_parent).
SHM = Path("/dev/shm")
PROFILE_CACHE_PREFIX = "gotune-sandbox-profiles-"
# .1-.10 are left to the machine (127.0.0.1 localhost, 127.0.1.1 Debian's hostname line).
FIRST_OCTET = 11
LAST_OCTET = 254
# 22 first, as on a real host; 2222 where this machine's own sshd holds *:22.
SSH_PORTS = (22, 2222)
# Killing and reaping a namespace's processes takes milliseconds; 10 s means stuck.
STOP_TIMEOUT = 10.0
# How often start and stop look at logs and /proc: short next to a 40 ms start.
POLL_INTERVAL = 0.002


class SandboxUnavailable(RuntimeError):
    """This machine cannot run sandbox hosts (not root, no sshd, no overlayfs, no address)."""


def start_time(pid: int) -> int | None:
    """The kernel's start time of a process (clock ticks since boot): PID plus this
    identifies one process even after its PID is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])


def alive(pid: int, start: int | None) -> bool:
    """True while the process started at ``start`` runs (a zombie has finished running)."""
    return start is not None and start_time(pid) == start and _state(pid) != "Z"


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def names_root(link: str, root: str) -> bool:
    """Whether ``link``, a /proc/PID/root, is ``root`` or a directory below it. Read from
    inside a chroot (scripts/fresh-machine-check runs the tests in one) the kernel names
    a root outside the reader's from the machine's own, so the chroot's path may come
    first."""
    at = link.find(root)
    rest = link[at + len(root):] if at >= 0 else None
    return rest is not None and (rest == "" or rest.startswith("/")) and (
        at == 0 or link[:at].startswith("/"))


def namespace_processes(mntns: str, root: str) -> list[int]:
    """PIDs whose mount namespace is ``mntns`` and whose root is ``root`` (or below it)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry.name}/ns/mnt") != mntns:
                continue
            proc_root = os.readlink(f"/proc/{entry.name}/root")
        except OSError:  # gone, or a zombie (its namespaces are already released)
            continue
        if names_root(proc_root, root):
            found.append(int(entry.name))
    return found


def kill_namespace(pid: int | None, pid_start: int | None, mntns: str | None, root: str) -> None:
    """SIGKILL the host's launcher/sshd and every process in its namespace until none is left,
    and wait until each of them has finished exiting.

    The host is disposable, so there is no graceful stop to wait for; its mounts
    go away with the namespace once the last of these processes has exited. The
    launcher is killed only while PID and start time prove it is still the one we started.
    A process being killed drops its root and namespaces before it is a zombie: it no
    longer looks like the host's, yet still runs; it is waited for, by PID and start time.
    """
    deadline = time.monotonic() + STOP_TIMEOUT
    killed: dict[int, int | None] = {}  # PID -> start time
    while True:
        victims = set(namespace_processes(mntns, root)) if mntns else set()
        if pid is not None and alive(pid, pid_start):
            victims.add(pid)
        exiting = [p for p, start in killed.items() if alive(p, start)]
        if not victims and not exiting:
            return
        for victim in victims:
            killed.setdefault(victim, start_time(victim))
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"sandbox: processes {sorted(victims | set(exiting))} in {root} do not exit"
            )
        time.sleep(POLL_INTERVAL)


def remove_tree(path: Path) -> None:
    """rmtree that tolerates files vanishing meanwhile (a dying process removing its socket)."""

    def vanished_is_fine(
        func: object, name: str, exc_info: tuple[type, BaseException, Any]
    ) -> None:
        if not isinstance(exc_info[1], FileNotFoundError):
            raise exc_info[1]

    shutil.rmtree(path, onerror=vanished_is_fine)


@contextlib.contextmanager
def allocation_lock() -> Iterator[None]:
    """Serialise address claims and stale cleanup between parallel test runs."""
    SANDBOX_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    with open(SANDBOX_ROOT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def clean_stale() -> list[Path]:
    """Remove what interrupted runs left behind, where their owner file proves it.

    A session dir is stale when its ``owner.json`` names a process that no longer
    runs (PID and start time). Its hosts' processes are killed only when their
    recorded namespace and root still match. Dirs without an owner file are left
    alone. Call with the allocation lock held. Returns the dirs removed.
    """
    removed = []
    for session_dir in SANDBOX_ROOT.glob("s*"):
        owner = read_json(session_dir / "owner.json")
        if owner is None or alive(int(owner.get("pid", 0)), owner.get("start")):
            continue
        profiles = Path(str(owner.get("profiles", "")))
        if profiles.name.startswith(PROFILE_CACHE_PREFIX) and profiles.parent in (SHM, session_dir):
            shutil.rmtree(profiles, ignore_errors=True)
        for record_path in session_dir.glob("*/*/host.json"):
            record = read_json(record_path)
            if record:
                kill_namespace(
                    record.get("pid"), record.get("pid_start"), record.get("mntns"), record["root"]
                )
                _release(record)
        shutil.rmtree(session_dir, ignore_errors=True)
        removed.append(session_dir)
    _release_orphans()
    return removed


def _release(record: dict[str, Any]) -> None:
    """A stale host's cgroups (every process in them killed) and loop devices."""
    from tests.sandbox_cgroups import HostCgroups
    from tests.sandbox_storage import detach

    cgroups = HostCgroups.from_record(record.get("cgroups"))
    if cgroups is not None:
        cgroups.kill()
        cgroups.remove()
    for item in record.get("loops") or []:
        if isinstance(item, list) and len(item) == 2:
            detach(str(item[0]), str(item[1]))


def _release_orphans() -> None:
    """Cgroups and loop devices of sessions whose dir is gone (removed by code that did not
    know about them): a live session always has its dir, so these are nobody's."""
    from tests.sandbox_cgroups import orphans
    from tests.sandbox_storage import detach

    live = {d.name for d in SANDBOX_ROOT.glob("s*")}
    for cgroups in orphans(live):
        cgroups.kill()
        cgroups.remove()
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            image = backing.read_text().strip().removesuffix(" (deleted)")
        except OSError:
            continue
        inside = Path(image)
        under = inside.is_relative_to(SANDBOX_ROOT)
        parts = inside.relative_to(SANDBOX_ROOT).parts if under else ()
        if len(parts) > 1 and parts[0] not in live:
            detach(f"/dev/{backing.parent.parent.name}", image)


def claimed_addresses() -> set[tuple[str, int]]:
    """Addresses held by live sessions (this one included), from their host records."""
    claimed = set()
    for record_path in SANDBOX_ROOT.glob("s*/*/*/host.json"):
        record = read_json(record_path)
        if record:
            claimed.add((str(record["address"]), int(record["port"])))
    return claimed


def port_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As sshd binds: SO_REUSEADDR, so only a listener (not TIME_WAIT) counts as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def free_addresses(count: int, claimed: set[tuple[str, int]]) -> list[tuple[str, int]]:
    chosen: list[tuple[str, int]] = []
    for octet in range(FIRST_OCTET, LAST_OCTET + 1):
        address = f"127.0.0.{octet}"
        for port in SSH_PORTS:
            if (address, port) not in claimed and port_free(address, port):
                chosen.append((address, port))
                break
        if len(chosen) == count:
            return chosen
    raise SandboxUnavailable(f"no free loopback address for {count} sandbox hosts")
