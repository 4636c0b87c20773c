"""The typed facts document: what gotune knows about one host.

These dataclasses are the contract between collect, plan and report. Their JSON
form (``to_dict``) is what ``gotune facts --json`` prints and what
``gotune plan --facts FILE`` reads back (``Facts.from_dict``). Unknown values
are ``None`` (JSON null), never guesses; ``Facts.unknown`` lists why.

JSON keys equal the field names, except ``class_`` which is written ``class``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

# Storage classes, fastest first (the one list, shared with the agent's live classification).
from gotune.agent.mounts import STORAGE_CLASSES as STORAGE_CLASSES


@dataclass
class CpuKind:
    """A group of CPUs of one kind: P-cores, E-cores, or one max frequency."""

    name: str  # "P" / "E" on hybrid Intel (cpu_core / cpu_atom), else "all" or "fast"/"slow"
    cpus: list[int]
    max_mhz: float | None = None
    source: str = "uniform"  # "pmu" (cpu_core/cpu_atom), "frequency" or "uniform"


@dataclass
class Cpu:
    model: str | None = None
    vendor: str | None = None
    arch: str | None = None
    packages: int | None = None
    cores: int | None = None
    threads: int | None = None
    flags: list[str] = field(default_factory=list)
    x86_64_level: str | None = None  # "v1".."v4"; None off x86
    max_mhz: float | None = None
    kinds: list[CpuKind] = field(default_factory=list)
    online: list[int] = field(default_factory=list)
    # This process's CPU affinity (cpusets, taskset); [] when unknown.
    allowed: list[int] = field(default_factory=list)


@dataclass
class MemoryModule:
    type: str | None = None  # DDR4, DDR5, LPDDR5, LPDDR5x ...
    speed_mts: int | None = None
    size_bytes: int | None = None
    locator: str | None = None
    type_inferred: bool = False  # True when the type was inferred (LPDDR5 above 6400 MT/s)


@dataclass
class Memory:
    total_bytes: int | None = None
    available_bytes: int | None = None
    modules: list[MemoryModule] = field(default_factory=list)
    source: str | None = None  # "dmidecode", "udev", "edac" or None when unreadable


@dataclass
class NumaNode:
    id: int
    cpus: list[int] = field(default_factory=list)
    memory_bytes: int | None = None
    distances: list[int] = field(default_factory=list)
    memory_only: bool = False  # memory but no CPUs: CXL, HBM, GPU memory
    tier: int | None = None  # memory tier (abstract distance) where the kernel exposes it


@dataclass
class Numa:
    nodes: list[NumaNode] = field(default_factory=list)
    source: str = "sysfs"  # "sysfs", or "none" when the kernel has no NUMA (one node 0)


@dataclass
class BlockDevice:
    name: str
    class_: str = "unknown"  # one of STORAGE_CLASSES
    size_bytes: int | None = None
    model: str | None = None
    numa_node: int | None = None
    rotational: bool | None = None
    removable: bool | None = None


@dataclass
class Mount:
    path: str
    device: str
    fstype: str
    class_: str = "unknown"  # the backing device's class; "tmpfs"/"network" for those
    free_bytes: int | None = None  # None for network mounts: never statvfs'd
    size_bytes: int | None = None
    network: bool = False
    options: list[str] = field(default_factory=list)


@dataclass
class PathPlacement:
    """Where one path that matters lives (home, GOCACHE, GOMODCACHE)."""

    path: str
    mount: str | None = None
    device: str | None = None
    fstype: str | None = None
    class_: str = "unknown"
    free_bytes: int | None = None


@dataclass
class Storage:
    devices: list[BlockDevice] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    # keys: "home", "gocache", "gomodcache" (when known)
    paths: dict[str, PathPlacement] = field(default_factory=dict)


@dataclass
class Nic:
    name: str
    driver: str | None = None
    speed_mbps: int | None = None  # None when down or unknown
    numa_node: int | None = None  # None when -1 or absent
    virtual: bool = False
    up: bool = False


@dataclass
class Platform:
    hostname: str | None = None
    distro: str | None = None  # the `distro` package's id: debian, ubuntu, fedora ...
    distro_version: str | None = None
    # os-release's ID_LIKE, closest first: a derivative's parents (rocky: rhel, centos, fedora).
    distro_like: list[str] = field(default_factory=list)
    kernel: str | None = None
    arch: str | None = None
    virtualization: str = "unknown"  # wsl2, wsl1, vm:<kind>, container:<kind>, none
    systemd: bool = False
    cgroup_cpu_limit: float | None = None  # CPUs (quota/period); None when unlimited
    cgroup_memory_limit_bytes: int | None = None  # None when unlimited
    cron: bool = False  # a cron daemon is installed (runs jobs where systemd does not)

    def distro_ids(self) -> list[str]:
        """The distribution and those it is like, closest first (its package tool's key)."""
        return [d for d in (self.distro, *self.distro_like) if d]


@dataclass
class User:
    """The developer user the facts were gathered for."""

    name: str | None = None
    uid: int | None = None
    home: str | None = None
    shell: str | None = None
    gid: int | None = None
    group: str | None = None  # the primary group's name


@dataclass
class GoenvFile:
    """A user's GOENV file: what ``go env -w`` writes, one ``NAME=value`` per line."""

    path: str
    exists: bool = False
    values: dict[str, str] = field(default_factory=dict)


@dataclass
class UserFacts:
    """Everything gotune knows about one developer user on the host."""

    user: User = field(default_factory=User)
    go: dict[str, str] | None = None  # `go env -json` in the user's login shell
    goenv: GoenvFile | None = None  # None when GOENV=off
    # Lines of the user's shell start-up files that export Go settings over GOENV
    # ("/home/alice/.bashrc:12:export GOCACHE=/tmp/c").
    exports: list[str] = field(default_factory=list)
    # keys: "home", "gocache", "gomodcache" (when known)
    paths: dict[str, PathPlacement] = field(default_factory=dict)

    def setting(self, key: str) -> str | None:
        """A Go setting as the user's go sees it: ``go env`` when go ran, else what the GOENV
        file says (Go is not installed yet, or broken) — never a guess; None when unset."""
        if self.go is not None:
            return self.go.get(key) or None
        return (self.goenv.values.get(key) or None) if self.goenv else None


@dataclass
class CacheMove:
    """A cache gotune moved (undo moves it back)."""

    user: str
    key: str  # GOMODCACHE or GOCACHE
    src: str  # where it was
    dst: str  # where gotune put it


@dataclass
class InstalledPackage:
    tool: str  # the package manager that installed it (apt-get, dnf ...)
    package: str


@dataclass
class UndoRecord:
    """The undo directory of a host (``/var/lib/gotune/undo``; see ``operations/state.py``)."""

    files: dict[str, bool] = field(default_factory=dict)  # path -> existed before (False: absent)
    created: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)  # made for others to fill too: removed if empty
    moves: list[CacheMove] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    packages: list[InstalledPackage] = field(default_factory=list)
    users: list[str] = field(default_factory=list)  # system users gotune created
    owners: dict[str, str] = field(default_factory=dict)  # file path -> the user who writes it

    def empty(self) -> bool:
        return not (
            self.files or self.created or self.dirs or self.moves or self.mounts or self.units
            or self.packages or self.users
        )


@dataclass
class InstalledMirror:
    """The module mirror gotune runs on the host."""

    cache_dir: str | None = None  # its --cache-dir
    runner: str = "systemd"  # "systemd" (a unit) or "supervisor" (no systemd)


@dataclass
class InstalledBuildcache:
    """The team build cache's parts gotune installed on the host."""

    cache_dir: str | None = None  # the site's --cache-dir (None: no site served here)
    runner: str | None = None  # the site's "systemd" (a unit) or "supervisor"; None: none
    helper_source_sha256: str | None = None  # the source the helper was built from; None: none


@dataclass
class GotuneState:
    """What gotune itself left on the host: undo records, its plan, its measurements."""

    undo: UndoRecord = field(default_factory=UndoRecord)
    # The plan the last apply carried out (/var/lib/gotune/plan.json), as stored.
    plan: dict[str, Any] | None = None
    # NUMA wrappers' measured figures per tool (/var/lib/gotune/numa.json "tools").
    numa_measured: dict[str, dict[str, Any]] = field(default_factory=dict)
    mirror: InstalledMirror | None = None
    wear: str | None = None  # how the installed wear check runs: "systemd", "cron" or None
    buildcache: InstalledBuildcache | None = None
    # The GOCACHEPROG helper's A/B figures (/var/lib/gotune/buildcache.json), as stored.
    buildcache_measured: dict[str, Any] | None = None


@dataclass
class WslConfigFile:
    """One of WSL's configuration files (``/etc/wsl.conf``, ``.wslconfig``) as it is now.

    ``text`` is the whole file decoded: a byte order mark stays as U+FEFF and line ends
    stay as they are, so ``text.encode(encoding)`` gives back its bytes.
    """

    path: str
    exists: bool = False
    owner_uid: int | None = None
    encoding: str | None = None  # "utf-8", "utf-16-le" or "utf-16-be"; None when unreadable
    text: str | None = None
    error: str | None = None  # why it could not be read (then text is None)


@dataclass
class WslProject:
    """A Go module of a developer user's that lives under /mnt (on Windows' drives)."""

    user: str
    path: str  # the module's directory (it holds go.mod)
    source: str  # where gotune saw it: "shell history", "VS Code"


@dataclass
class WslDriveCost:
    """What one file operation costs on a Windows drive (9p) against the Linux root."""

    mount: str  # /mnt/c
    op_ms: float  # one lookup there, milliseconds
    root_op_ms: float  # one lookup on /
    ops: int  # lookups timed on each


@dataclass
class Wsl:
    """What a WSL2 distro knows about itself and the Windows host under it."""

    conf: WslConfigFile = field(default_factory=lambda: WslConfigFile("/etc/wsl.conf"))
    # The Windows user's profile as a Linux path (/mnt/c/Users/NAME), from the setting
    # gotune_wsl_windows_profile or through interop; None with ``windows_error`` saying why.
    windows_profile: str | None = None
    profile_source: str | None = None  # "setting" or "interop"
    windows_profile_exists: bool = False
    wslconfig: WslConfigFile | None = None  # <profile>/.wslconfig
    windows_memory_bytes: int | None = None
    windows_cpus: int | None = None  # logical processors
    windows_error: str | None = None  # why the Windows host could not be asked
    max_user_watches: int | None = None  # fs.inotify.max_user_watches
    # $PATH where the collector ran, and the entries of it on Windows' drives (/mnt/X/...).
    path_entries: list[str] = field(default_factory=list)
    windows_path_entries: list[str] = field(default_factory=list)
    # Seconds per `command -v` of a missing name, interleaved samples: "with" the Windows
    # entries and "without" them ([] when not measured).
    lookup_with_s: list[float] = field(default_factory=list)
    lookup_without_s: list[float] = field(default_factory=list)
    # What an earlier apply recorded when it set appendWindowsPath (/var/lib/gotune/wsl.json).
    recorded: dict[str, Any] | None = None
    projects: list[WslProject] = field(default_factory=list)
    drive_costs: list[WslDriveCost] = field(default_factory=list)
    restart_pending: bool = False  # /run/gotune/wsl-restart-needed exists


@dataclass
class Facts:
    cpu: Cpu = field(default_factory=Cpu)
    memory: Memory = field(default_factory=Memory)
    numa: Numa = field(default_factory=Numa)
    storage: Storage = field(default_factory=Storage)
    nics: list[Nic] = field(default_factory=list)
    platform: Platform = field(default_factory=Platform)
    # The first developer user's user, go and storage.paths (as the first landing
    # printed them); the planner reads ``users``, which holds every developer user.
    user: User = field(default_factory=User)
    go: dict[str, str] | None = None  # `go env -json` of the developer user
    unknown: list[str] = field(default_factory=list)  # "memory.modules: dmidecode needs root"
    users: dict[str, UserFacts] = field(default_factory=dict)
    gotune: GotuneState = field(default_factory=GotuneState)
    connected_uid: int | None = None  # `id -u` where the collector ran: root is 0
    wsl: Wsl | None = None  # only on WSL2

    def set_users(self, users: dict[str, UserFacts]) -> None:
        """Set every developer user's facts; the first one also fills user, go and paths."""
        self.users = users
        first = next(iter(users.values()), None)
        if first is not None:
            self.user, self.go, self.storage.paths = first.user, first.go, dict(first.paths)

    def to_dict(self) -> dict[str, Any]:
        return _to_json(self)

    def to_json(self) -> dict[str, Any]:
        """The same as ``to_dict``: the hook pyinfra's CLI calls to print a fact as JSON."""
        return self.to_dict()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Facts:
        """Read a facts document back; missing keys take their defaults.

        A document from before ``users`` existed names one user in ``user``/``go``
        and ``storage.paths``: that user becomes ``users``.
        """
        facts = _from_json(cls, data)
        if "users" not in data and facts.user.name:
            facts.users = {
                facts.user.name: UserFacts(
                    user=facts.user, go=facts.go, paths=dict(facts.storage.paths)
                )
            }
        return facts


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            _json_key(f.name): _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)
        }
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    return value


def _json_key(name: str) -> str:
    return "class" if name == "class_" else name


T = TypeVar("T")


def _from_json(cls: type[T], data: Any) -> T:
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = _json_key(f.name)
        if key in data:
            kwargs[f.name] = _coerce(hints[f.name], data[key], key)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(inner[0], value, key)
    if dataclasses.is_dataclass(hint):
        return _from_json(hint, value)  # type: ignore[arg-type]
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{key}: expected a list")
        (item,) = typing.get_args(hint)
        return [_coerce(item, v, key) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected an object")
        _, item = typing.get_args(hint)
        return {str(k): _coerce(item, v, key) for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise ValueError(f"{key}: expected {hint.__name__}, got {type(value).__name__}")
    return value
