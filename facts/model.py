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

# Storage classes, fastest first; the planner ranks media by this order.
STORAGE_CLASSES = ("nvme", "ssd", "emmc", "sd", "hdd", "virtual", "unknown")
# Filesystems that are never a home for a Go cache (network, 9p/drvfs, FUSE).
NETWORK_FSTYPES = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "drvfs", "virtiofs", "sshfs", "afs",
     "ceph", "glusterfs", "lustre", "beegfs", "gpfs"}
)


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
    kernel: str | None = None
    arch: str | None = None
    virtualization: str = "unknown"  # wsl2, wsl1, vm:<kind>, container:<kind>, none
    systemd: bool = False
    cgroup_cpu_limit: float | None = None  # CPUs (quota/period); None when unlimited
    cgroup_memory_limit_bytes: int | None = None  # None when unlimited


@dataclass
class User:
    """The developer user the facts were gathered for."""

    name: str | None = None
    uid: int | None = None
    home: str | None = None
    shell: str | None = None


@dataclass
class Facts:
    cpu: Cpu = field(default_factory=Cpu)
    memory: Memory = field(default_factory=Memory)
    numa: Numa = field(default_factory=Numa)
    storage: Storage = field(default_factory=Storage)
    nics: list[Nic] = field(default_factory=list)
    platform: Platform = field(default_factory=Platform)
    user: User = field(default_factory=User)
    go: dict[str, str] | None = None  # `go env -json` of the developer user
    unknown: list[str] = field(default_factory=list)  # "memory.modules: dmidecode needs root"

    def to_dict(self) -> dict[str, Any]:
        return _to_json(self)

    def to_json(self) -> dict[str, Any]:
        """The same as ``to_dict``: the hook pyinfra's CLI calls to print a fact as JSON."""
        return self.to_dict()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Facts:
        """Read a facts document back; missing keys take their defaults."""
        return _from_json(cls, data)


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
