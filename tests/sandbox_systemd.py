"""Sandbox hosts that boot systemd as PID 1 (systemd-nspawn), as users' machines do.

The rootfs (``tests/sandbox_rootfs.py``) is the read-only lower layer of an
overlay whose upper layer is the host's own, so a host keeps its files across
reboots and costs ~25 MiB. The launcher, run in its own mount and PID
namespace, mounts that overlay and the host's slow storage, joins the host's
cgroups (``tests/sandbox_cgroups.py``: nspawn needs a cgroup of its own when the
machine runs no systemd) and starts ``systemd-nspawn -b`` in a loop:

- exit 133 is a reboot inside: nspawn starts again on the same layers;
- any other exit (poweroff, a crash) ends the launcher; ``SandboxHost.boot()``
  starts a new one on the same layers.

The container shares this machine's network: its sshd listens on the host's own
loopback address, so pyinfra reaches it like any sandbox host. The launcher is
PID 1 of its namespace: when it dies (the test process died, pdeathsig) the
kernel kills everything below it, the container included.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from tests.sandbox_cgroups import HostCgroups, hierarchies
from tests.sandbox_mounts import PROC_FILES, profile_units
from tests.sandbox_state import POLL_INTERVAL

NSPAWN = "systemd-nspawn"
# nspawn's exit status when the container asked for a reboot.
REBOOT_STATUS = 133
# A boot to `running` takes ~1 s here (2 cores); 60 s only catches one that hangs.
BOOT_TIMEOUT = 60.0
BOOTS_FILE = "boots"


def missing_requirement() -> str | None:
    """Why systemd hosts cannot run here (besides the rootfs), or None."""
    if shutil.which(NSPAWN) is None:
        return "systemd hosts need systemd-nspawn (apt-get install systemd-container)"
    found = hierarchies()
    if "track" not in found or "unified" not in found:
        return "systemd hosts need a cgroup2 hierarchy and a name=systemd (or unified) one"
    return None


def launcher_script(
    host_dir: Path,
    machine: str,
    rootfs: Path,
    join: Sequence[str],
    storage: Sequence[str],
    binds: Sequence[str],
) -> str:
    """The launcher: cgroups, layers, storage, then nspawn again after every reboot.

    + join: lines that move the shell into the host's cgroups
    + storage: lines that mount the host's slow storage (FUSE) before it boots
    + binds: extra nspawn options (--bind=..., --bind-ro=...)
    """
    q = shlex.quote
    root = host_dir / "root"
    nspawn = [
        NSPAWN, "--quiet", "--register=no", "--keep-unit", "--link-journal=no",
        "--console=read-only", f"--machine={machine}", f"--directory={root}", *binds, "--boot",
    ]  # fmt: skip
    return "\n".join([
        "set -eu",
        *join,
        # nspawn keeps locks and propagation dirs in /run/systemd/nspawn: in a tmpfs
        # of this namespace, not on the machine's /run.
        "mount -t tmpfs -o mode=755 tmpfs /run",
        f"mount -t overlay overlay -o lowerdir={q(str(rootfs))},"
        f"upperdir={q(str(host_dir / 'upper'))},workdir={q(str(host_dir / 'work'))} {q(str(root))}",
        *storage,
        "while :; do",
        f"  date +%s.%N >> {q(str(host_dir / BOOTS_FILE))}",
        "  rc=0",
        "  " + " ".join(q(a) for a in nspawn) + " </dev/null || rc=$?",
        '  echo "sandbox: nspawn exited with $rc"',
        f'  [ "$rc" -eq {REBOOT_STATUS} ] || exit "$rc"',
        "done",
        "",
    ])  # fmt: skip


def launcher_argv(script: Path) -> list[str]:
    """The launcher's command line: PID 1 of a new PID namespace that dies with the caller."""
    return [
        "setpriv", "--pdeathsig", "KILL", "--",
        "unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc",
        "--propagation", "private", "--", "sh", str(script),
    ]  # fmt: skip


def boots(host_dir: Path) -> int:
    """How many times nspawn has been started for this host."""
    try:
        return len((host_dir / BOOTS_FILE).read_text().split())
    except OSError:
        return 0


def container_init(procs: set[int]) -> int | None:
    """Of a host's processes, the container's PID 1 (its innermost PID is 1, two levels down)."""
    for pid in sorted(procs):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:"):
                levels = line.split()[1:]
                if len(levels) >= 3 and levels[-1] == "1":
                    return pid
    return None


def populate_upper(upper: Path, hostname: str, address: str, units: dict[str, str]) -> None:
    """The host's own files in its layer: identity, and units the harness adds (its disks)."""
    etc = upper / "etc"
    etc.mkdir(mode=0o755, parents=True, exist_ok=True)
    (etc / "hostname").write_text(hostname + "\n")
    (etc / "machine-id").write_text(os.urandom(16).hex() + "\n")
    (etc / "hosts").write_text(
        f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{address}\t{hostname}\n"
    )
    system = etc / "systemd" / "system"
    for name, text in units.items():
        (system / "local-fs.target.wants").mkdir(parents=True, exist_ok=True)
        (system / name).write_text(text)
        (system / "local-fs.target.wants" / name).symlink_to(f"/etc/systemd/system/{name}")


def profile_binds(tree: Path) -> list[str]:
    """nspawn options laying a recorded machine over a systemd host's /sys and /proc files."""
    binds = [f"--bind-ro={tree / 'sys' / unit}:/sys/{unit}" for unit in profile_units(tree)]
    binds += [
        f"--bind-ro={tree / 'proc' / name}:/proc/{name}"
        for name in PROC_FILES
        if (tree / "proc" / name).is_file()
    ]
    return binds


def port_open(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((address, port)) == 0


def tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "no output"


class SystemdPower:
    """Power and boots of a systemd sandbox host (``SandboxHost`` mixes this in)."""

    name: str
    address: str
    port: int
    dir: Path
    systemd: bool
    cgroups: HostCgroups | None
    process: subprocess.Popen[bytes] | None
    boot_seconds: list[float]

    @property
    def log(self) -> Path:
        raise NotImplementedError

    def run(
        self, cmd: str, user: str = "root", timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        raise NotImplementedError

    def _relaunch(self) -> None:
        """Start the launcher again (the host's own code knows how)."""
        raise NotImplementedError

    def init_pid(self) -> int | None:
        """The container's PID 1 (on this machine's PID numbering), None when it is not running."""
        if not self.systemd or self.cgroups is None:
            return None
        return container_init(self.cgroups.procs())

    @property
    def boots(self) -> int:
        """How many times this host has booted (reboots included)."""
        return boots(self.dir)

    def reboot(self) -> None:
        """Reboot as the power button would (SIGRTMIN+5 to systemd) and wait until it runs again."""
        self._signal_init(signal.SIGRTMIN + 5)
        self.wait_booted(self.boots)

    def poweroff(self) -> None:
        """Power off cleanly (SIGRTMIN+4 to systemd: units stop, ExecStop= runs) and wait."""
        self._signal_init(signal.SIGRTMIN + 4)
        self.wait_stopped()

    def crash(self) -> None:
        """Pull the plug: SIGKILL the container's PID 1, so nothing stops cleanly."""
        self._signal_init(signal.SIGKILL)
        self.wait_stopped()

    def boot(self) -> None:
        """Boot a stopped host again, on the same layers (its files are still there)."""
        if not self.systemd:
            raise RuntimeError(f"sandbox {self.name}: only systemd hosts can be booted again")
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"sandbox {self.name} is running")
        before = self.boots
        self._relaunch()
        self.wait_booted(before)

    def wait_booted(self, boots_before: int, timeout: float = BOOT_TIMEOUT) -> str:
        """Wait for boot number ``boots_before + 1`` to reach ``running``; returns systemd's state.

        After ``systemctl reboot`` inside, pass the ``boots`` read before it.
        """
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        while self.boots <= boots_before:
            self._check_launcher_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"sandbox {self.name}: no boot within {timeout} s")
            time.sleep(POLL_INTERVAL * 10)
        while not port_open(self.address, self.port):
            self._check_launcher_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"sandbox {self.name}: sshd not up {timeout} s after boot: "
                    f"{tail(self.log.read_text(errors='replace'))}"
                )
            time.sleep(POLL_INTERVAL * 10)
        out = self.run("systemctl is-system-running --wait", timeout=timeout)
        state = out.stdout.strip()
        self.boot_seconds.append(time.monotonic() - started)
        if state not in ("running", "degraded"):
            raise RuntimeError(f"sandbox {self.name}: systemd is {state!r}: {out.stderr.strip()}")
        return state

    def wait_stopped(self, timeout: float = BOOT_TIMEOUT) -> int:
        """Wait until the host is off (launcher gone); returns nspawn's last exit status."""
        assert self.process is not None
        code = self.process.wait(timeout=timeout)
        # The launcher was PID 1 of its namespace: everything it ran is gone with it.
        if self.cgroups is not None:
            self.cgroups.kill()
        return code

    def _signal_init(self, signum: int) -> None:
        init = self.init_pid()
        if init is None:
            raise RuntimeError(f"sandbox {self.name}: not running")
        os.kill(init, signum)

    def _check_launcher_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"sandbox {self.name} stopped while booting: "
                f"{tail(self.log.read_text(errors='replace'))}"
            )
