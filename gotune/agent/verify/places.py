"""Where a cache lives, as the user meets it: owner, writability, filesystem and disk.

The mount table, the mount holding a path and what a filesystem type is come from
``gotune.agent.mounts``, the classification facts use too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
from typing import Any

from gotune.agent import mounts
from gotune.agent.mounts import MountEntry

# What the write probe writes: one page, enough to hit a full filesystem.
PROBE_BYTES = 4096
# Major 0 is an anonymous device (tmpfs, overlay, network filesystems): no disk behind it.
NO_DISK_MAJOR = "0:"
SYS_DEV_BLOCK = "/sys/dev/block"
# dm over md over disks is three levels; eight stops a loop in a broken sysfs.
MAX_STACK_DEPTH = 8


def _read_first(paths: list[str]) -> str | None:
    for cand in paths:
        with contextlib.suppress(OSError, UnicodeDecodeError), open(
                cand, encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    return None


def _disk_identity(real: str) -> tuple[str, str, str | None, str | None, str | None, str | None]:
    """(disk name, its sysfs path, model, vendor, rotational, mmc type) of a block device's
    whole disk (a partition's parent)."""
    parent = os.path.dirname(real)
    disk = parent if os.path.exists(f"{real}/partition") else real

    def attr(rel: str) -> str | None:
        return _read_first([f"{disk}/{rel}"])

    return (os.path.basename(disk), disk, attr("device/model"), attr("device/vendor"),
            attr("queue/rotational"), attr("device/type"))


def _class_of(real: str, depth: int = 0) -> str:
    """A block device's storage class; a dm/md stack is as slow as its slowest disk."""
    slaves = os.path.join(real, "slaves")
    with contextlib.suppress(OSError):
        below = sorted(os.listdir(slaves))
        if below and depth < MAX_STACK_DEPTH:
            return mounts.slowest_class([
                _class_of(os.path.realpath(os.path.join(slaves, b)), depth + 1) for b in below])
    name, link, model, vendor, rotational, mmc_type = _disk_identity(real)
    return mounts.disk_class(name, link, model, vendor, rotational, mmc_type)


def block_device(devno: str) -> dict[str, Any]:
    """Name, rotational flag, whether it is a VM's virtual disk and its class, from sysfs."""
    base = f"{SYS_DEV_BLOCK}/{devno}"
    info: dict[str, Any] = {}
    if not os.path.exists(base):
        return info
    real = os.path.realpath(base)
    name, link, model, vendor, rotational, _mmc = _disk_identity(real)
    info["device"] = os.path.basename(real)
    info["rotational"] = None if rotational is None else rotational == "1"
    info["virtual"] = mounts.is_virtual_disk(name, link, vendor, model)
    info["class"] = _class_of(real)
    return info


def storage_class(entry: MountEntry, table: list[MountEntry]) -> str:
    """The class of the storage behind a mount: "network", "tmpfs", a disk's class, "unknown"."""
    def disk(m: MountEntry) -> str:
        if not m.devno or m.devno.startswith(NO_DISK_MAJOR):
            return "unknown"
        return str(block_device(m.devno).get("class", "unknown"))

    return mounts.mount_class(entry, table, disk, exists=os.path.isdir)


def place(path: str, table: list[MountEntry]) -> dict[str, Any]:
    """Filesystem facts for the nearest existing ancestor of ``path``."""
    probe = os.path.realpath(path) if path else ""
    while probe and probe != "/" and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    info: dict[str, Any] = {"resolved": probe or None}
    m = mounts.mount_of(probe or "/", table)
    if m is not None:
        info["mount"] = m.point
        info["fstype"] = m.fstype
        info["source"] = m.source
        info["mount_options"] = ",".join(m.options)
        info["super_options"] = ",".join(m.super_options)
        if not m.devno.startswith(NO_DISK_MAJOR):
            info.update(block_device(m.devno))
        info["class"] = storage_class(m, table)
    # A dead server or FUSE daemon would hang statvfs, and the whole runner with it.
    if probe and not mounts.is_network_or_fuse(info.get("fstype")):
        with contextlib.suppress(OSError):
            st = os.statvfs(probe)
            info["size_bytes"] = st.f_blocks * st.f_frsize
            info["free_bytes"] = st.f_bavail * st.f_frsize
    return info


def _write_probe(path: str) -> dict[str, Any]:
    """Can the user create a file in ``path`` and write a page to it."""
    probe = os.path.join(path, f".gotune-verify-write-{os.getpid()}")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"x" * PROBE_BYTES)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        return {"writable": False, "write_error": exc.strerror,
                "write_errno": errno.errorcode.get(exc.errno or 0, str(exc.errno))}
    return {"writable": True}


def observe_path(path: str, table: list[MountEntry]) -> dict[str, Any]:
    """Run as the user: does the path exist, who owns it, can the user write there."""
    obs: dict[str, Any] = {"path": path}
    try:
        st = os.stat(path)
        obs["exists"] = True
        obs["uid"] = st.st_uid
        try:
            obs["owner"] = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            obs["owner"] = str(st.st_uid)
        obs["mode"] = oct(st.st_mode & 0o7777)
    except OSError as exc:
        obs["exists"] = False
        obs["stat_error"] = exc.strerror
    obs.update(_write_probe(path))
    obs.update(place(path, table))
    return obs
