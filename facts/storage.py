"""Storage facts: block devices and their class, mounts, and where paths live.

Sources: /sys/class/block/* (or /sys/block/*) attributes and symlinks,
/proc/self/mountinfo (or /proc/mounts in older recordings), and the
collector's ``stat -f`` of each local mount. A network or FUSE mount is never
statvfs'd: a dead server would hang the collector.
"""

from __future__ import annotations

import re

from gotune.facts.collect import Dump
from gotune.facts.model import NETWORK_FSTYPES, STORAGE_CLASSES, BlockDevice, Mount, PathPlacement
from gotune.facts.sysfs import parse_int

BLOCK_CLASS = "/sys/class/block"
BLOCK_SYS = "/sys/block"

# Models and vendors of emulated disks: a hypervisor's disk is "virtual" whatever
# its `rotational` flag says (QEMU reports 1, Hyper-V 0).
VIRTUAL_DISK = re.compile(
    r"qemu|vmware|vbox|virtual ?disk|msft|xen|elastic block store|persistentdisk|bochs|red hat"
    r"|virtio",
    re.IGNORECASE,
)
# Kernel block devices that are not storage to put caches on.
PSEUDO_DISK = re.compile(r"(loop|ram|zram|nbd|fd|sr)\d+")
MEMORY_FSTYPES = frozenset({"tmpfs", "ramfs"})
# Kernel interfaces mounted as filesystems: no place for files, left out of the mounts.
PSEUDO_FSTYPES = frozenset(
    {
        "proc",
        "sysfs",
        "cgroup",
        "cgroup2",
        "devpts",
        "devtmpfs",
        "mqueue",
        "debugfs",
        "tracefs",
        "securityfs",
        "pstore",
        "bpf",
        "configfs",
        "fusectl",
        "binfmt_misc",
        "nsfs",
        "efivarfs",
        "rpc_pipefs",
        "hugetlbfs",
        "selinuxfs",
        "autofs",
        "cpuset",
    }
)


def is_network_fstype(fstype: str) -> bool:
    """Network filesystems, 9p/drvfs (WSL2's /mnt/c) and FUSE (sshfs and friends)."""
    return (
        fstype in NETWORK_FSTYPES or fstype.startswith(("nfs", "smb", "fuse.")) or fstype == "fuse"
    )


def _block_root(dump: Dump) -> str:
    return BLOCK_CLASS if dump.children(BLOCK_CLASS) else BLOCK_SYS


def _parent_disk(dump: Dump, root: str, name: str) -> str:
    """The whole disk a partition lives on (``nvme0n1p2`` -> ``nvme0n1``)."""
    if f"{root}/{name}/partition" not in dump.exists:
        return name
    parts = dump.links.get(f"{root}/{name}", "").rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 and parts[-1] == name else name


def classify(
    name: str,
    link: str,
    model: str | None,
    vendor: str | None,
    rotational: str | None,
    mmc_type: str | None,
) -> str:
    """A disk's class from its name, sysfs path and identity (not for dm/md stacks)."""
    ident = f"{vendor or ''} {model or ''}"
    if "/virtio" in link or "/vbd-" in link or "/xen" in link or VIRTUAL_DISK.search(ident):
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


def _udev_rpm(dump: Dump, majmin: str | None) -> int | None:
    if not majmin:
        return None
    text = dump.text(f"/run/udev/data/b{majmin}") or ""
    m = re.search(r"(?m)^E:ID_ATA_ROTATION_RATE_RPM=(\d{1,6})$", text)
    return int(m.group(1)) if m else None


def _slowest(classes: list[str]) -> str:
    known = [c for c in classes if c in STORAGE_CLASSES and c != "unknown"]
    return max(known, key=STORAGE_CLASSES.index) if known else "unknown"


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


def unescape_mount(text: str) -> str:
    """Undo the kernel's octal escapes in mount paths (``\\040`` is a space)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def parse_mount_table(dump: Dump) -> list[tuple[str, str, str, list[str], str, str]]:
    """(path, source, fstype, options, major:minor, raw path) from mountinfo or /proc/mounts."""
    rows = []
    info = dump.text("/proc/self/mountinfo")
    if info:
        for line in info.splitlines():
            head, sep, tail = line.partition(" - ")
            fields, rest = head.split(" "), tail.split(" ")
            if not sep or len(fields) < 6 or len(rest) < 2:
                continue
            options = (
                fields[5].split(",") + rest[2].split(",") if len(rest) > 2 else fields[5].split(",")
            )
            rows.append(
                (
                    unescape_mount(fields[4]),
                    unescape_mount(rest[1]),
                    rest[0],
                    options,
                    fields[2],
                    fields[4],
                )
            )
        return rows
    for line in (dump.text("/proc/mounts") or "").splitlines():
        fields = line.split(" ")
        if len(fields) >= 4:
            rows.append(
                (
                    unescape_mount(fields[1]),
                    unescape_mount(fields[0]),
                    fields[2],
                    fields[3].split(","),
                    "",
                    fields[1],
                )
            )
    return rows


def parse_mounts(dump: Dump, devices: list[BlockDevice], unknown: list[str]) -> list[Mount]:
    root = _block_root(dump)
    by_majmin = {v: n for n in dump.children(root) if (v := dump.value(f"{root}/{n}/dev"))}
    by_dm_name = {v: n for n in dump.children(root) if (v := dump.value(f"{root}/{n}/dm/name"))}
    classes = {d.name: d.class_ for d in devices}
    mounts = []
    for path, source, fstype, options, majmin, raw in parse_mount_table(dump):
        if fstype in PSEUDO_FSTYPES:
            continue
        mount = Mount(path=path, device=source, fstype=fstype, options=list(dict.fromkeys(options)))
        if is_network_fstype(fstype):
            mount.network, mount.class_ = True, "network"
        elif fstype in MEMORY_FSTYPES:
            mount.class_ = "tmpfs"
        else:
            name = by_majmin.get(majmin)
            if name is None and source.startswith("/dev/mapper/"):
                name = by_dm_name.get(source[len("/dev/mapper/") :])
            if name is None and source.startswith("/dev/"):
                name = source[len("/dev/") :]
            if name is not None:
                mount.class_ = classes.get(_parent_disk(dump, root, name), "unknown")
        stat = dump.output(f"statvfs {raw}")
        numbers = [parse_int(t) for t in (stat or "").split()]
        if len(numbers) == 4 and all(n is not None and n >= 0 for n in numbers):
            bsize, blocks, _free, avail = (n or 0 for n in numbers)
            mount.free_bytes, mount.size_bytes = bsize * avail, bsize * blocks
        mounts.append(mount)
    for mount in mounts:
        if mount.fstype == "overlay" and mount.class_ == "unknown":
            upper = next(
                (o[len("upperdir=") :] for o in mount.options if o.startswith("upperdir=")), None
            )
            below = place(upper, [m for m in mounts if m is not mount]) if upper else None
            if below is not None:
                mount.class_ = below.class_
    if not mounts:
        unknown.append("storage.mounts: no mount table readable")
    elif dump.live and not any(m.free_bytes is not None for m in mounts):
        unknown.append("storage.mounts.free_bytes: stat -f gave nothing")
    return mounts


def place(path: str, mounts: list[Mount]) -> PathPlacement | None:
    """The mount holding ``path``: longest mount-point prefix, the later of equal ones."""
    best: Mount | None = None
    for mount in mounts:
        mp = mount.path.rstrip("/") or "/"
        if (path == mp or path.startswith(mp + "/") or mp == "/") and (
            best is None or len(mp) >= len(best.path.rstrip("/") or "/")
        ):
            best = mount
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
