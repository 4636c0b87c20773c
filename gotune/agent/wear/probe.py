"""Live readings: find the host's drives and read each one (smartctl, or sysfs for eMMC).

Every failure becomes a DeviceWear with status "unknown" and the reason —
a missing smartctl, no root, a VM's virtual disk, a drive that does not answer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gotune.agent.wear.emmc import read_emmc
from gotune.agent.wear.record import DeviceWear
from gotune.agent.wear.smart import parse_smartctl

# A drive waking from standby answers in ~10 s; 30 s leaves room for that while a
# hung USB bridge still cannot stall the periodic check for long.
SMARTCTL_TIMEOUT_S = 30.0

# Block devices that are not drives: loop, RAM, zram, device-mapper, md RAID,
# optical, floppy, network block devices, bcache/zvol layers.
NOT_DRIVES = re.compile(r"^(loop|ram|zram|dm-|md|sr|fd|nbd|rbd|drbd|bcache|zd|nullb)")
EMMC = re.compile(r"^mmcblk\d+$")
NVME_NAMESPACE = re.compile(r"^(nvme\d+)n\d+$")
VIRTUAL_NAMES = re.compile(r"^(vd[a-z]+|xvd[a-z]+)$")
VIRTIO_PCI_VENDOR = "0x1af4"  # Red Hat, Inc.: every virtio device
SMARTCTL_TYPE = re.compile(r"^[a-z0-9_,+-]{1,40}$")  # a -d value from --scan-open

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def find_smartctl() -> str | None:
    """smartctl on PATH, or in /usr/sbin and /sbin (cron's PATH often lacks them)."""
    found = shutil.which("smartctl")
    if found:
        return found
    for candidate in ("/usr/sbin/smartctl", "/sbin/smartctl", "/usr/local/sbin/smartctl"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def _is_virtual(name: str, block_dir: Path) -> str | None:
    """Why this block device is a hypervisor's virtual disk, or None."""
    if VIRTUAL_NAMES.match(name):
        kind = "xen" if name.startswith("xvd") else "virtio"
        return f"virtual disk ({kind}): the hypervisor hides the physical drive's wear"
    try:
        target = os.readlink(block_dir)
    except OSError:
        target = ""
    if "/virtio" in target or _read(block_dir / "device" / "vendor") == VIRTIO_PCI_VENDOR:
        return "virtual disk (virtio): the hypervisor hides the physical drive's wear"
    return None


def sysfs_drives(sysroot: Path) -> list[tuple[str, Path]]:
    """(device path, /sys/block dir) for each drive, NVMe namespaces folded into controllers."""
    block = sysroot / "sys" / "block"
    try:
        names = sorted(p.name for p in block.iterdir())
    except OSError:
        return []
    out: list[tuple[str, Path]] = []
    seen: set[str] = set()
    for name in names:
        if NOT_DRIVES.match(name) or "boot" in name or "rpmb" in name:
            continue
        m = NVME_NAMESPACE.match(name)
        dev = f"/dev/{m.group(1)}" if m else f"/dev/{name}"
        if re.match(r"^nvme\d+c\d+n\d+$", name) or dev in seen:
            continue  # a multipath path, or another namespace of a controller already listed
        seen.add(dev)
        out.append((dev, block / name))
    return out


def scan_open(smartctl: str, run: Runner) -> list[tuple[str, str | None]]:
    """Devices ``smartctl --scan-open --json`` finds, with the -d type it suggests."""
    try:
        proc = run(
            [smartctl, "--scan-open", "--json"],
            capture_output=True,
            text=True,
            timeout=SMARTCTL_TIMEOUT_S,
            check=False,
        )
        doc = json.loads(proc.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        return []
    out: list[tuple[str, str | None]] = []
    for entry in (doc.get("devices") or []) if isinstance(doc, dict) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        dtype = entry.get("type")
        ok_type = isinstance(dtype, str) and SMARTCTL_TYPE.match(dtype)
        out.append((entry["name"], dtype if ok_type else None))
    return out


def _unknown(device: str, reason: str, kind: str = "unknown") -> DeviceWear:
    return DeviceWear(device=device, kind=kind, source="none", reason=reason)


def read_smartctl(device: str, smartctl: str, run: Runner, dtype: str | None = None) -> DeviceWear:
    """Run ``smartctl --json -a DEVICE`` and parse it; any failure is a reason, not a crash."""
    # -n standby: never spin up a sleeping disk just to read its counters.
    argv = [smartctl, "--json", "-a", "-n", "standby"]
    if dtype and dtype not in ("auto",):
        argv += ["-d", dtype]
    argv.append(device)
    try:
        proc = run(argv, capture_output=True, text=True, timeout=SMARTCTL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return _unknown(device, f"smartctl timed out after {SMARTCTL_TIMEOUT_S:g} s")
    except OSError as exc:
        return _unknown(device, f"cannot run smartctl: {exc.strerror or exc}")
    try:
        doc: Any = json.loads(proc.stdout)
    except ValueError:
        first = (proc.stderr or proc.stdout or "").strip().splitlines()
        detail = first[0] if first else f"exit status {proc.returncode}"
        return _unknown(device, f"smartctl gave no JSON for {device}: {detail}")
    return parse_smartctl(doc, device)


def probe(
    sysroot: Path = Path("/"),
    smartctl: str | None = None,
    run: Runner = subprocess.run,
    is_root: bool | None = None,
    find: Callable[[], str | None] = find_smartctl,
) -> list[DeviceWear]:
    """Read every drive on this host (``smartctl`` None: look for it with ``find``)."""
    root = os.geteuid() == 0 if is_root is None else is_root
    tool = smartctl if smartctl is not None else find()
    can_smart = tool is not None and root
    scanned = scan_open(tool, run) if tool is not None and root else []
    hints = dict(scanned)
    records: list[DeviceWear] = []
    listed: set[str] = set()
    for dev, block_dir in sysfs_drives(sysroot):
        listed.add(dev)
        name = block_dir.name
        if EMMC.match(name):
            records.append(read_emmc(block_dir, dev))
            continue
        virtual = _is_virtual(name, block_dir)
        if virtual:
            records.append(_unknown(dev, virtual))
        elif tool is None:
            records.append(_unknown(dev, "smartctl not found (install smartmontools)"))
        elif not can_smart:
            records.append(_unknown(dev, "reading SMART needs root"))
        else:
            records.append(read_smartctl(dev, tool, run, hints.get(dev)))
    for dev, dtype in scanned:
        if tool is not None and dev not in listed:
            listed.add(dev)
            records.append(read_smartctl(dev, tool, run, dtype))
    return records


def read_recorded(paths: list[Path]) -> list[DeviceWear]:
    """Parse recorded ``smartctl --json`` files; unreadable or non-JSON files raise.

    Raises OSError or ValueError naming nothing: the caller adds the path.
    """
    out = []
    for path in paths:
        doc = json.loads(path.read_text(encoding="utf-8"))
        out.append(parse_smartctl(doc, str(path)))
    return out
