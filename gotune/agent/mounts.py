"""Mount tables and what kind of storage a filesystem is: the one classification.

Facts (on the control machine, from a collected dump), the plan and verify's
runner (on the target, live) all ask the same questions, answered here once:

- the mount table: ``parse_mountinfo`` (/proc/self/mountinfo) and
  ``parse_proc_mounts`` (older recordings), octal escapes undone;
- which mount holds a path: ``mount_of`` (longest mount-point prefix; of equal
  ones the later, which shadows the earlier);
- what a filesystem type is: ``fs_kind`` and the ``is_*`` predicates over the
  ``*_FSTYPES`` sets (network, host-shared, FUSE, memory, pseudo);
- whether a block device is a hypervisor's disk: ``is_virtual_disk``, and a disk's
  class (nvme, ssd, hdd ...): ``disk_class``;
- what backs an overlay: ``overlay_upper_mount``, only what the table proves;
- a mount's storage class: ``mount_class`` ("network", "tmpfs", a disk's class,
  or "unknown").

Standard library only: it runs on targets inside the agent zipapp.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TypeVar

M = TypeVar("M")

# -- the mount table -------------------------------------------------------------------

MOUNTINFO = "/proc/self/mountinfo"
# The kernel writes space, tab, newline and backslash in paths as \040, \011, \012, \134.
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class MountEntry:
    """One line of a mount table, unescaped."""

    point: str  # where it is mounted
    source: str  # what is mounted: /dev/nvme0n1p2, server:/export, tmpfs
    fstype: str  # ext4, nfs4, fuse.sshfs (a FUSE filesystem's subtype after the dot)
    devno: str = ""  # "major:minor" of the filesystem; "" when the table has none
    options: tuple[str, ...] = ()  # this mount's options: ro, nosuid, relatime ...
    super_options: tuple[str, ...] = ()  # the filesystem's: size=..., upperdir=...
    raw_point: str = ""  # the mount point as the kernel wrote it (escaped, no spaces)


def unescape(field: str) -> str:
    """Undo the kernel's octal escapes in a mount table field (``\\040`` is a space)."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def _option_list(field: str) -> tuple[str, ...]:
    return tuple(o for o in field.split(",") if o)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Entries of /proc/PID/mountinfo; malformed lines are skipped.

    ``36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue``:
    ID, parent ID, major:minor, root, mount point, options, optional fields up to
    ``-``, then type, source and the filesystem's options.
    """
    out: list[MountEntry] = []
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if not sep or len(fields) < 6 or len(rest) < 2:
            continue
        out.append(MountEntry(
            point=unescape(fields[4]), source=unescape(rest[1]), fstype=unescape(rest[0]),
            devno=fields[2], options=_option_list(fields[5]),
            super_options=_option_list(rest[2]) if len(rest) > 2 else (), raw_point=fields[4],
        ))
    return out


def parse_proc_mounts(text: str) -> list[MountEntry]:
    """Entries of /proc/mounts (``source point type options 0 0``): no device numbers."""
    out: list[MountEntry] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            out.append(MountEntry(point=unescape(fields[1]), source=unescape(fields[0]),
                                  fstype=unescape(fields[2]), options=_option_list(fields[3]),
                                  raw_point=fields[1]))
    return out


def read_mountinfo(path: str = MOUNTINFO) -> list[MountEntry]:
    """This process's mount table; empty when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            return parse_mountinfo(fh.read())
    except OSError:
        return []


def _norm(point: str) -> str:
    return point.rstrip("/") or "/"


def _within(path: str, point: str) -> bool:
    """``path`` is ``point`` or below it (``point`` normalised, no trailing slash)."""
    return point == "/" or path == point or path.startswith(point + "/")


def mount_of(path: str, mounts: Sequence[M],
             point: Callable[[M], str] = attrgetter("point")) -> M | None:
    """The mount holding ``path``: the longest mount-point prefix, the later of equal ones.

    + path: an absolute path as the table's namespace sees it (resolve symlinks first)
    + mounts: table entries, in table order (a later mount on a point shadows the earlier)
    + point: how to get an entry's mount point (default: its ``point`` attribute)
    """
    best: M | None = None
    best_len = -1
    for m in mounts:
        mp = _norm(point(m))
        if _within(path, mp) and len(mp) >= best_len:
            best, best_len = m, len(mp)
    return best


# -- filesystem types ------------------------------------------------------------------

# Filesystems a server answers, and the host-shared ones below: never a home for a
# Go cache (every file operation is a network round trip), never statvfs'd (a dead
# server hangs the caller).
NETWORK_FSTYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "drvfs", "virtiofs", "sshfs", "afs",
    "ceph", "glusterfs", "lustre", "beegfs", "gpfs",
})
# NFS and SMB come in versioned variants (nfs4.1 in old tables, smb2).
NETWORK_PREFIXES = ("nfs", "smb")
# How WSL2 and VMs share a host directory (WSL2's /mnt/c is 9p or drvfs). ``fuse.9p``
# is the FUSE stand-in for 9p the test sandboxes mount (same behaviour, no kernel 9p).
HOST_SHARED_FSTYPES = frozenset({"9p", "drvfs", "virtiofs", "fuse.9p"})
# A user-space daemon answers every call: slow, and statvfs hangs when it does.
# ``fuseblk`` (ntfs-3g, exfat on a local disk) is a disk filesystem, not this.
FUSE_FSTYPE = "fuse"
# RAM: fast, and lost at reboot.
MEMORY_FSTYPES = frozenset({"tmpfs", "ramfs"})
# Kernel interfaces mounted as filesystems: no place for files.
PSEUDO_FSTYPES = frozenset({
    "proc", "sysfs", "cgroup", "cgroup2", "devpts", "devtmpfs", "mqueue", "debugfs",
    "tracefs", "securityfs", "pstore", "bpf", "configfs", "fusectl", "binfmt_misc", "nsfs",
    "efivarfs", "rpc_pipefs", "hugetlbfs", "selinuxfs", "autofs", "cpuset",
})
OVERLAY_FSTYPE = "overlay"

# What ``fs_kind`` answers.
HOST_SHARED = "host-shared"
NETWORK = "network"
FUSE = "fuse"
MEMORY = "memory"
PSEUDO = "pseudo"
LOCAL = "local"  # everything else: disk filesystems, overlays, types not listed here


def is_fuse(fstype: str | None) -> bool:
    """``fuse`` itself or a FUSE filesystem with its subtype (``fuse.sshfs``)."""
    return bool(fstype) and (fstype == FUSE_FSTYPE or str(fstype).startswith(FUSE_FSTYPE + "."))


def fs_kind(fstype: str | None) -> str:
    """The kind of storage a filesystem type is; the most telling kind wins (9p is host-shared)."""
    fs = fstype or ""
    if fs in HOST_SHARED_FSTYPES:
        return HOST_SHARED
    if fs in NETWORK_FSTYPES or fs.startswith(NETWORK_PREFIXES):
        return NETWORK
    if is_fuse(fs):
        return FUSE
    if fs in MEMORY_FSTYPES:
        return MEMORY
    if fs in PSEUDO_FSTYPES:
        return PSEUDO
    return LOCAL


def is_host_shared(fstype: str | None) -> bool:
    """A VM's or WSL2's view of a host directory (9p, drvfs, virtiofs)."""
    return fs_kind(fstype) == HOST_SHARED


def is_network(fstype: str | None) -> bool:
    """A network filesystem, host-shared ones included."""
    return fs_kind(fstype) in (HOST_SHARED, NETWORK)


def is_network_or_fuse(fstype: str | None) -> bool:
    """Storage a server or a user-space daemon answers: never a cache's home, never statvfs'd."""
    return fs_kind(fstype) in (HOST_SHARED, NETWORK, FUSE)


def is_memory(fstype: str | None) -> bool:
    return fs_kind(fstype) == MEMORY


def is_pseudo(fstype: str | None) -> bool:
    return fs_kind(fstype) == PSEUDO


# -- block devices ---------------------------------------------------------------------

# Models and vendors of emulated disks: a hypervisor's disk is "virtual" whatever its
# `rotational` flag says (QEMU reports 1, Hyper-V 0), so its speed is unknown.
VIRTUAL_DISK_MODEL = re.compile(
    r"qemu|vmware|vbox|virtual ?disk|msft|xen|elastic block store|persistentdisk|bochs|red hat"
    r"|virtio",
    re.IGNORECASE,
)
# Paravirtual buses in a disk's sysfs path (virtio-blk, Xen's vbd).
VIRTUAL_DISK_LINKS = ("/virtio", "/vbd-", "/xen")
# virtio-blk and Xen name their disks vda, xvda ...
VIRTUAL_DISK_NAME = re.compile(r"(vd|xvd)[a-z]+")


def is_virtual_disk(name: str, link: str = "", vendor: str | None = None,
                    model: str | None = None) -> bool:
    """Whether a whole disk is a VM's virtual disk.

    + name: the disk's kernel name (``vda``, ``sda``; not a partition)
    + link: its sysfs device path (``/sys/class/block/NAME`` resolved)
    + vendor, model: ``device/vendor`` and ``device/model`` from sysfs
    """
    ident = f"{vendor or ''} {model or ''}"
    return (any(bus in link for bus in VIRTUAL_DISK_LINKS)
            or bool(VIRTUAL_DISK_MODEL.search(ident))
            or bool(VIRTUAL_DISK_NAME.fullmatch(name)))


# Storage classes, fastest first; the planner ranks media by this order.
STORAGE_CLASSES = ("nvme", "ssd", "emmc", "sd", "hdd", "virtual", "unknown")


def slowest_class(classes: Sequence[str]) -> str:
    """The slowest known class of a stack's disks (dm over md over disks); "unknown" if none."""
    known = [c for c in classes if c in STORAGE_CLASSES and c != "unknown"]
    return max(known, key=STORAGE_CLASSES.index) if known else "unknown"


def disk_class(name: str, link: str, model: str | None, vendor: str | None,
               rotational: str | None, mmc_type: str | None) -> str:
    """A whole disk's class (one of facts' ``STORAGE_CLASSES``) from its identity.

    + name: the disk's kernel name (``nvme0n1``, ``sda``, ``mmcblk0``; not a partition)
    + link: its sysfs device path
    + model, vendor: ``device/model`` and ``device/vendor``
    + rotational: ``queue/rotational`` as read ("1", "0" or None)
    + mmc_type: ``device/type`` of an MMC card ("MMC" for eMMC, "SD")

    Not for dm/md stacks: their class is the slowest of the disks below them.
    """
    if is_virtual_disk(name, link, vendor, model):
        return "virtual"
    if name.startswith("nvme"):
        return "nvme"
    if name.startswith("mmcblk"):
        return {"MMC": "emmc", "SD": "sd"}.get((mmc_type or "").strip().upper(), "unknown")
    if rotational == "1":
        return "hdd"
    if rotational == "0":
        return "ssd"
    return "unknown"


# -- overlays and storage classes ------------------------------------------------------

def overlay_upperdir(entry: MountEntry) -> str | None:
    """The ``upperdir=`` an overlay writes to, as its creator's namespace named it."""
    for opt in (*entry.super_options, *entry.options):
        if opt.startswith("upperdir="):
            return opt[len("upperdir="):]
    return None


def overlay_upper_mount(overlay: MountEntry, mounts: Sequence[MountEntry],
                        exists: Callable[[str], bool] | None = None) -> MountEntry | None:
    """The mount that provably holds an overlay's upper layer (its writes), or None.

    ``upperdir`` is a path as the overlay's creator saw it when mounting, in its
    mount namespace, which need not be the one this table shows:

    - an overlay that is this table's root (a container, a test sandbox) was made
      before that root existed, so its upper layer lies outside this view: never proven;
    - otherwise the upper layer is on the mount that held the path then: the longest
      prefix among the mounts listed before the overlay (a table lists mounts in the
      order they were made; one made later cannot hold it);
    - ``exists`` (live callers: ``os.path.isdir``), when given, must find the directory,
      which tells a path of another namespace (a sandbox's host directory) from ours.
    """
    upper = overlay_upperdir(overlay)
    index = next((i for i, m in enumerate(mounts) if m is overlay), None)
    if not upper or not upper.startswith("/") or index is None or _norm(overlay.point) == "/":
        return None
    holder = mount_of(upper, mounts[:index])
    if holder is None or (exists is not None and not exists(upper)):
        return None
    return holder


def mount_class(entry: MountEntry, mounts: Sequence[MountEntry],
                disk_class: Callable[[MountEntry], str],
                exists: Callable[[str], bool] | None = None) -> str:
    """A mount's storage class: "network", "tmpfs", its disk's class, or "unknown".

    + entry: the mount, one of ``mounts``
    + disk_class: the class of the block device behind a disk filesystem
      (``nvme``, ``ssd``, ``hdd``, ``virtual`` ... or ``unknown``)
    + exists: a live check that an overlay's upper directory is there (see
      ``overlay_upper_mount``)
    """
    while True:  # an overlay's upper mount comes earlier in the table: this ends
        kind = fs_kind(entry.fstype)
        if kind in (HOST_SHARED, NETWORK, FUSE):
            return "network"
        if kind == MEMORY:
            return "tmpfs"
        if entry.fstype != OVERLAY_FSTYPE:
            return disk_class(entry)
        holder = overlay_upper_mount(entry, mounts, exists)
        if holder is None:
            return "unknown"
        entry = holder
