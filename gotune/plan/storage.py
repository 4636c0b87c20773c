"""Which filesystems may hold a Go cache, and how they rank.

Pure functions over ``facts.model``: no I/O. The cache rules in ``caches.py``
ask three questions here: where does a path live, may a cache live there, and
which local filesystem is the fastest with room.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gotune.agent import mounts as table
from gotune.facts.model import Facts, Mount, PathPlacement

GIB = 1024**3

# Speed rank of a storage class, lower is faster. eMMC, SD and spinning disks
# are ranked together: all are an order of magnitude slower than SATA SSDs at
# the small random reads a Go build does. Virtual disks and unknown media get
# the worst rank: we never move a cache *to* them for speed.
RANK = {"nvme": 0, "ssd": 1, "emmc": 2, "sd": 2, "hdd": 2, "virtual": 3, "unknown": 3}
WORST_RANK = 3

# Filesystems a cache may be *moved to*: local, persistent, POSIX permissions.
# (A cache already on another local filesystem, e.g. an overlay root, may stay.)
DISK_FSTYPES = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "zfs", "bcachefs", "jfs", "reiserfs", "nilfs2"}
)
# Filesystems with no Unix ownership: a user-owned cache cannot live there.
NO_OWNER_FSTYPES = frozenset({"vfat", "msdos", "exfat", "ntfs", "ntfs3", "fuseblk", "iso9660"})
# System mount points that are never a home for caches even when they qualify.
SYSTEM_PREFIXES = (
    "/boot",
    "/efi",
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/snap",
    "/usr",
    "/var/lib/docker",
    "/var/lib/containers",
    "/mnt/wsl",
)
# Paths gotune writes into GOENV, fstab and unit names: plain characters only, so
# a hostile mount path is never a candidate (GOENV lines cannot quote).
SAFE_PATH = re.compile(r"^/[A-Za-z0-9._+/-]*$")


@dataclass
class Place:
    """Where a path lives: its mount, filesystem and storage class."""

    path: str
    mount: str | None
    fstype: str | None
    class_: str
    free_bytes: int | None
    network: bool = False
    read_only: bool = False


def rank(class_: str) -> int:
    return RANK.get(class_, WORST_RANK)


def mount_of(facts: Facts, path: str) -> Mount | None:
    """The mount holding ``path``: the longest mount point that is a prefix of it."""
    best: Mount | None = None
    for m in facts.storage.mounts:
        mp = m.path.rstrip("/") or "/"
        inside = path == mp or path.startswith(mp + "/") or mp == "/"
        if inside and (best is None or len(mp) > len(best.path.rstrip("/") or "/")):
            best = m
    return best


def place_of(facts: Facts, path: str, known: PathPlacement | None = None) -> Place:
    """Where ``path`` lives, preferring the collector's own placement of it (``known``)."""
    m = mount_of(facts, path)
    if known is not None and known.path == path and known.fstype is not None:
        return Place(
            path,
            known.mount,
            known.fstype,
            known.class_,
            known.free_bytes,
            network=table.is_network_or_fuse(known.fstype) or (m.network if m else False),
            read_only=bool(m and "ro" in m.options),
        )
    if m is None:
        return Place(path, None, None, "unknown", None)
    return Place(
        path,
        m.path,
        m.fstype,
        m.class_,
        m.free_bytes,
        network=m.network,
        read_only="ro" in m.options,
    )


def unsuitable(place: Place) -> str | None:
    """Why a cache must not live here (None: it may)."""
    fstype = place.fstype or ""
    if place.network or table.is_network(fstype) or place.class_ == "network":
        return f"{place.mount or place.path} is a network filesystem ({fstype or 'network'})"
    if table.is_fuse(fstype) or fstype in NO_OWNER_FSTYPES:
        return f"{place.mount} is {fstype}: slow or without Unix ownership"
    if table.is_memory(fstype) or place.class_ == "tmpfs":
        return f"{place.mount} is RAM ({fstype}): lost at reboot"
    if place.read_only:
        return f"{place.mount} is mounted read-only"
    return None


def has_room(free_bytes: int | None, min_free_bytes: int) -> bool:
    """Unknown free space counts as room: the collector could not statvfs it."""
    return free_bytes is None or free_bytes >= min_free_bytes


def candidates(facts: Facts, min_free_bytes: int) -> list[Mount]:
    """Local persistent writable filesystems with room, fastest then roomiest first."""
    removable = {d.name for d in facts.storage.devices if d.removable}
    found = []
    for m in facts.storage.mounts:
        if m.network or m.fstype not in DISK_FSTYPES or "ro" in m.options:
            continue
        if not SAFE_PATH.match(m.path) or m.path.startswith(SYSTEM_PREFIXES):
            continue
        if _on_removable(m.device, removable):
            continue
        if m.free_bytes is None or m.free_bytes < min_free_bytes:
            continue
        found.append(m)
    return sorted(found, key=lambda m: (rank(m.class_), -(m.free_bytes or 0), m.path))


_PARTITION = re.compile(r"^p?[0-9]+$")


def _on_removable(device: str, removable: set[str]) -> bool:
    """Whether a mount's device (a disk or one of its partitions: sdb1, mmcblk0p1) is removable."""
    name = device.rsplit("/", 1)[-1]
    return any(
        name == d or (name.startswith(d) and _PARTITION.match(name[len(d) :])) for d in removable
    )


def gib(n: int | None) -> str:
    if n is None:
        return "unknown"
    value = n / GIB
    whole = value >= 10 and abs(value - round(value)) < 0.05
    return f"{value:.0f} GiB" if whole else f"{value:.1f} GiB"
