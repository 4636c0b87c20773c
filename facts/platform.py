"""Platform facts: distro, kernel, virtualization (WSL, container, VM), systemd, cgroup limits.

Sources: /etc/os-release, /proc/sys/kernel/osrelease, WSL's binfmt_misc
interop entry, container markers (/.dockerenv, /run/.containerenv, PID 1's
``container=``, /proc/self/cgroup), DMI vendor strings and the cpuinfo
``hypervisor`` flag, ``systemd-detect-virt`` where it runs, /run/systemd/system,
and the process's own cgroup (v2 cpu.max/memory.max, v1 CFS quota and memory limit).
"""

from __future__ import annotations

import re
import shlex

from distro import NORMALIZED_OS_ID

from gotune.facts.collect import Dump
from gotune.facts.model import Platform
from gotune.facts.sysfs import parse_int

# A cgroup v1 memory limit at or above this is "no limit" (the kernel reports
# PAGE_COUNTER_MAX rounded to pages, 9223372036854771712, for unlimited).
CGROUP_V1_UNLIMITED = 1 << 62

# DMI vendor/product strings of hypervisors -> gotune's vm kind.
VM_VENDORS: tuple[tuple[str, str], ...] = (
    (r"\bKVM\b", "kvm"),
    (r"QEMU", "qemu"),
    (r"VMware", "vmware"),
    (r"VirtualBox|innotek", "virtualbox"),
    (r"Microsoft Corporation.*Virtual Machine|Hyper-V", "hyperv"),
    (r"\bXen\b", "xen"),
    (r"Amazon EC2", "amazon"),
    (r"Google Compute Engine", "google"),
    (r"Parallels", "parallels"),
    (r"OpenStack", "openstack"),
    (r"BHYVE", "bhyve"),
    (r"Bochs", "bochs"),
    (r"Apple Virtualization", "apple"),
)
# systemd-detect-virt answers that mean a container, not a VM.
CONTAINER_KINDS = frozenset(
    {
        "docker",
        "podman",
        "lxc",
        "lxc-libvirt",
        "systemd-nspawn",
        "openvz",
        "rkt",
        "proot",
        "pouch",
        "container-other",
    }
)


def parse_os_release(text: str | None) -> dict[str, str]:
    """os-release ``KEY=value`` lines, shell quoting undone (as the distro package reads them)."""
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
            continue
        try:
            value = " ".join(shlex.split(value))
        except ValueError:
            value = value.strip("\"'")
        out[key] = value
    return out


def distro_id(release: dict[str, str]) -> str | None:
    """The distro package's id: lower-cased, spaces to underscores, its aliases applied."""
    raw = release.get("ID")
    if not raw:
        return None
    ident = raw.lower().replace(" ", "_")
    return NORMALIZED_OS_ID.get(ident, ident)


def distro_like(release: dict[str, str]) -> list[str]:
    """os-release's ID_LIKE as ids (closest first), normalised as ``distro_id`` does."""
    return [NORMALIZED_OS_ID.get(i, i) for i in release.get("ID_LIKE", "").lower().split()]


def _environ_container(data: bytes | None) -> str | None:
    for item in (data or b"").split(b"\0"):
        if item.startswith(b"container="):
            return item[len(b"container=") :].decode("utf-8", "replace").strip() or None
    return None


def virtualization(dump: Dump, cpu_flags: list[str]) -> str:
    """wsl2, wsl1, container:<kind>, vm:<kind> or none (WSL first, then containers, then VMs)."""
    osrelease = dump.value("/proc/sys/kernel/osrelease") or ""
    interop = any(
        p in dump.exists
        for p in (
            "/proc/sys/fs/binfmt_misc/WSLInterop",
            "/proc/sys/fs/binfmt_misc/WSLInterop-late",
            "/run/WSL",
        )
    )
    detected = (dump.output("detect-virt") or "").strip()
    if "microsoft" in osrelease.lower() or interop or detected == "wsl":
        # WSL1 kernels say "4.4.0-19041-Microsoft"; WSL2's say "...-microsoft-standard-WSL2".
        return "wsl1" if osrelease.endswith("-Microsoft") else "wsl2"
    kind = _environ_container(dump.files.get("/proc/1/environ")) or dump.value(
        "/run/systemd/container"
    )
    if kind:
        return f"container:{kind}"
    if detected in CONTAINER_KINDS:
        return f"container:{detected}"
    if "/.dockerenv" in dump.exists:
        return "container:docker"
    if "/run/.containerenv" in dump.exists:
        return "container:podman"
    cgroup = dump.text("/proc/self/cgroup") or ""
    for pattern, name in (
        (r"/docker[/-]", "docker"),
        (r"/libpod-|/podman", "podman"),
        (r"/lxc(\.payload)?[/.]", "lxc"),
        (r"kubepods", "kubernetes"),
    ):
        if re.search(pattern, cgroup):
            return f"container:{name}"
    if "/proc/vz" in dump.exists and "/proc/bc" not in dump.exists:
        return "container:openvz"
    if detected and detected != "none":
        return f"vm:{detected}"
    dmi = " ".join(
        dump.value(f"/sys/class/dmi/id/{k}") or ""
        for k in ("sys_vendor", "product_name", "board_vendor", "bios_vendor", "product_version")
    )
    for pattern, name in VM_VENDORS:
        if re.search(pattern, dmi, re.IGNORECASE):
            return f"vm:{name}"
    if (dump.value("/sys/hypervisor/type") or "") == "xen":
        return "vm:xen"
    if "hypervisor" in cpu_flags:
        return "vm:other"
    return "none"


def cgroup_limits(dump: Dump) -> tuple[float | None, int | None]:
    """(CPUs, memory bytes) the process's cgroup allows; the tightest level wins."""
    cpu: float | None = None
    memory: int | None = None
    for path, text in dump.values.items():
        if not path.startswith("/sys/fs/cgroup/"):
            continue
        name = path.rsplit("/", 1)[-1]
        if name == "cpu.max":
            parts = text.split()
            quota = parse_int(parts[0]) if parts else None
            period = parse_int(parts[1]) if len(parts) > 1 else 100000
            if quota and quota > 0 and period and period > 0:
                cpu = min(cpu or float("inf"), quota / period)
        elif name == "cpu.cfs_quota_us":
            quota = parse_int(text)
            period = parse_int(dump.value(path[: -len(name)] + "cpu.cfs_period_us") or "")
            if quota and quota > 0 and period and period > 0:
                cpu = min(cpu or float("inf"), quota / period)
        elif name in ("memory.max", "memory.limit_in_bytes"):
            limit = parse_int(text)
            if limit is not None and 0 < limit < CGROUP_V1_UNLIMITED:
                memory = min(memory or limit, limit)
    return cpu, memory


def parse_platform(
    dump: Dump, arch: str | None, cpu_flags: list[str], unknown: list[str]
) -> Platform:
    release = parse_os_release(dump.text("/etc/os-release") or dump.text("/usr/lib/os-release"))
    platform = Platform(
        hostname=dump.value("/proc/sys/kernel/hostname") or dump.value("/etc/hostname"),
        distro=distro_id(release),
        distro_version=release.get("VERSION_ID") or None,
        distro_like=distro_like(release),
        kernel=dump.value("/proc/sys/kernel/osrelease"),
        arch=arch,
        virtualization=virtualization(dump, cpu_flags),
        systemd="/run/systemd/system" in dump.exists,
    )
    if platform.kernel is None:
        version = re.match(r"Linux version (\S+)", dump.text("/proc/version") or "")
        platform.kernel = version.group(1) if version else None
    if platform.distro is None:
        unknown.append("platform.distro: no os-release")
    platform.cgroup_cpu_limit, platform.cgroup_memory_limit_bytes = cgroup_limits(dump)
    return platform
