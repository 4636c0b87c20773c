"""Storage facts: block devices and their class, mounts, and where paths live.

Sources: /sys/class/block/* (or /sys/block/*) attributes and symlinks,
/proc/self/mountinfo (or /proc/mounts in older recordings), and the
collector's ``stat -f`` of each local mount. A network or FUSE mount is never
statvfs'd: a dead server would hang the collector. What a filesystem type is,
which mount holds a path and what backs an overlay are answered by
``gotune.agent.mounts``, the one classification the verify runner uses too.
"""

from __future__ import annotations

import re

from gotune.agent import mounts as table
from gotune.facts.collect import Dump
from gotune.facts.model import BlockDevice, Mount, PathPlacement
from gotune.facts.sysfs import parse_int

BLOCK_CLASS = "/sys/class/block"
BLOCK_SYS = "/sys/block"

# Kernel block devices that are not storage to put caches on.
PSEUDO_DISK = re.compile(r"(loop|ram|zram|nbd|fd|sr)\d+")


def _block_root(dump: Dump) -> str:
    return BLOCK_CLASS if dump.children(BLOCK_CLASS) else BLOCK_SYS


def _parent_disk(dump: Dump, root: str, name: str) -> str:
    """The whole disk a partition lives on (``nvme0n1p2`` -> ``nvme0n1``)."""
    if f"{root}/{name}/partition" not in dump.exists:
        return name
    parts = dump.links.get(f"{root}/{name}", "").rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 and parts[-1] == name else name


# A disk's class from its name, sysfs path and identity: the one rule, shared with
# verify's runner (``gotune.agent.mounts.disk_class``).
classify = table.disk_class


def _udev_rpm(dump: Dump, majmin: str | None) -> int | None:
    if not majmin:
        return None
    text = dump.text(f"/run/udev/data/b{majmin}") or ""
    m = re.search(r"(?m)^E:ID_ATA_ROTATION_RATE_RPM=(\d{1,6})$", text)
    return int(m.group(1)) if m else None


_slowest = table.slowest_class


def parse_devices(dump: Dump) -> list[BlockDevice]:
    """Whole disks and device-mapper/md stacks, with their class."""
    root = _block_root(dump)
    devices: dict[str, BlockDevice] = {}
    stacks: dict[str, list[str]] = {}
    for name in dump.children(root):
        base = f"{root}/{name}"
        if f"{base}/partition" in dump.exists or PSEUDO_DISK.fullmatch(name):
            continue
        link = dump.links.get(base, "")
        model = dump.value(f"{base}/device/model")
        vendor = dump.value(f"{base}/device/vendor")
        rotational = dump.value(f"{base}/queue/rotational")
        # udev's ATA identify data knows an SSD behind a bridge that says rotational=1.
        rpm = _udev_rpm(dump, dump.value(f"{base}/dev"))
        if rpm is not None:
            rotational = "1" if rpm > 0 else "0"
        sectors = parse_int(dump.value(f"{base}/size"))
        numa = parse_int(dump.value(f"{base}/device/numa_node"))
        if numa is None:
            numa = parse_int(dump.value(f"{base}/device/device/numa_node"))
        device = BlockDevice(
            name=name,
            class_=classify(
                name, link, model, vendor, rotational, dump.value(f"{base}/device/type")
            ),
            size_bytes=sectors * 512 if sectors is not None and sectors >= 0 else None,
            model=model,
            numa_node=numa if numa is not None and numa >= 0 else None,
            rotational={"0": False, "1": True}.get(rotational or ""),
            removable={"0": False, "1": True}.get(dump.value(f"{base}/removable") or ""),
        )
        slaves = dump.children(f"{base}/slaves")
        if slaves:
            stacks[name] = [_parent_disk(dump, root, s) for s in slaves]
        devices[name] = device
    for name, under in stacks.items():
        devices[name].class_ = _slowest([_stack_class(devices, stacks, u, 0) for u in under])
    return list(devices.values())


def _stack_class(
    devices: dict[str, BlockDevice], stacks: dict[str, list[str]], name: str, depth: int
) -> str:
    if name in stacks and depth < 8:  # dm over md over disks; 8 levels stops a loop
        return _slowest([_stack_class(devices, stacks, u, depth + 1) for u in stacks[name]])
    got = devices.get(name)
    return got.class_ if got else "unknown"


def mount_entries(dump: Dump) -> list[table.MountEntry]:
    """The mount table: /proc/self/mountinfo, else /proc/mounts (older recordings)."""
    info = dump.text("/proc/self/mountinfo")
    if info:
        return table.parse_mountinfo(info)
    return table.parse_proc_mounts(dump.text("/proc/mounts") or "")


def parse_mounts(dump: Dump, devices: list[BlockDevice], unknown: list[str]) -> list[Mount]:
    root = _block_root(dump)
    by_majmin = {v: n for n in dump.children(root) if (v := dump.value(f"{root}/{n}/dev"))}
    by_dm_name = {v: n for n in dump.children(root) if (v := dump.value(f"{root}/{n}/dm/name"))}
    classes = {d.name: d.class_ for d in devices}

    def disk_class(entry: table.MountEntry) -> str:
        name = by_majmin.get(entry.devno)
        if name is None and entry.source.startswith("/dev/mapper/"):
            name = by_dm_name.get(entry.source[len("/dev/mapper/") :])
        if name is None and entry.source.startswith("/dev/"):
            name = entry.source[len("/dev/") :]
        return classes.get(_parent_disk(dump, root, name), "unknown") if name else "unknown"

    entries = [e for e in mount_entries(dump) if not table.is_pseudo(e.fstype)]
    mounts = []
    for entry in entries:
        mount = Mount(
            path=entry.point, device=entry.source, fstype=entry.fstype,
            class_=table.mount_class(entry, entries, disk_class),
            network=table.is_network_or_fuse(entry.fstype),
            options=list(dict.fromkeys([*entry.options, *entry.super_options])),
        )  # fmt: skip
        stat = dump.output(f"statvfs {entry.raw_point}")
        numbers = [parse_int(t) for t in (stat or "").split()]
        if len(numbers) == 4 and all(n is not None and n >= 0 for n in numbers):
            bsize, blocks, _free, avail = (n or 0 for n in numbers)
            mount.free_bytes, mount.size_bytes = bsize * avail, bsize * blocks
        mounts.append(mount)
    if not mounts:
        unknown.append("storage.mounts: no mount table readable")
    elif dump.live and not any(m.free_bytes is not None for m in mounts):
        unknown.append("storage.mounts.free_bytes: stat -f gave nothing")
    return mounts


def place(path: str, mounts: list[Mount]) -> PathPlacement | None:
    """The mount holding ``path``: longest mount-point prefix, the later of equal ones."""
    best = table.mount_of(path, mounts, point=lambda m: m.path)
    if best is None:
        return None
    return PathPlacement(
        path=path,
        mount=best.path,
        device=best.device,
        fstype=best.fstype,
        class_=best.class_,
        free_bytes=best.free_bytes,
    )
