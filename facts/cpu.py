"""CPU facts: model, topology counts, flags, x86-64 level and core kinds.

Sources: /proc/cpuinfo, /sys/devices/system/cpu/cpuN/{online,topology,cpufreq,
cpu_capacity}, and /sys/devices/cpu_core|cpu_atom/cpus on hybrid Intel.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gotune.facts.collect import Dump
from gotune.facts.model import Cpu, CpuKind
from gotune.facts.sysfs import parse_cpulist, parse_cpumask, parse_int

CPU_SYS = "/sys/devices/system/cpu"

# Core kinds whose frequency (or Linux capacity) differs by less than this
# fraction are one kind: Intel's "favoured cores" run 200 MHz above their
# siblings (5.2 vs 5.0 GHz) without being a different kind of core. hwloc
# uses the same 10 % tolerance for max frequencies.
KIND_TOLERANCE = 0.10

# x86-64 micro-architecture levels (psABI), as /proc/cpuinfo names the flags.
X86_64_LEVELS: tuple[tuple[str, frozenset[str]], ...] = (
    ("v1", frozenset({"lm", "cmov", "cx8", "fpu", "fxsr", "mmx", "syscall", "sse", "sse2"})),
    ("v2", frozenset({"cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"})),
    ("v3", frozenset({"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"})),
    ("v4", frozenset({"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"})),
)

# Arm CPU part numbers (implementer 0x41) for a readable model name.
ARM_PARTS = {
    0xC07: "Cortex-A7",
    0xC09: "Cortex-A9",
    0xC0F: "Cortex-A15",
    0xD03: "Cortex-A53",
    0xD04: "Cortex-A35",
    0xD05: "Cortex-A55",
    0xD07: "Cortex-A57",
    0xD08: "Cortex-A72",
    0xD09: "Cortex-A73",
    0xD0A: "Cortex-A75",
    0xD0B: "Cortex-A76",
    0xD0C: "Neoverse-N1",
    0xD0D: "Cortex-A77",
    0xD40: "Neoverse-V1",
    0xD41: "Cortex-A78",
    0xD44: "Cortex-X1",
    0xD46: "Cortex-A510",
    0xD47: "Cortex-A710",
    0xD48: "Cortex-X2",
    0xD49: "Neoverse-N2",
    0xD4F: "Neoverse-V2",
    0xD80: "Cortex-A520",
    0xD81: "Cortex-A720",
    0xD82: "Cortex-X4",
    0xD84: "Neoverse-V3",
    0xD85: "Cortex-X925",
    0xD87: "Cortex-A725",
}
ARM_IMPLEMENTERS = {
    0x41: "ARM",
    0x42: "Broadcom",
    0x43: "Cavium",
    0x48: "HiSilicon",
    0x4E: "NVIDIA",
    0x50: "APM",
    0x51: "Qualcomm",
    0x61: "Apple",
    0xC0: "Ampere",
}


def parse_cpuinfo(text: str | None) -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per blank-line separated block (keys lower-cased)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in (text or "").splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current.setdefault(key.strip().lower(), value.strip())
    if current:
        blocks.append(current)
    return blocks


def _first(blocks: Iterable[dict[str, str]], *keys: str) -> str | None:
    for block in blocks:
        for key in keys:
            if block.get(key):
                return block[key]
    return None


def x86_64_level(flags: Iterable[str]) -> str | None:
    """The highest psABI level whose flags (and all lower levels') are present."""
    have = set(flags)
    if "lm" not in have:
        return None
    level = None
    for name, needed in X86_64_LEVELS:
        if not needed <= have:
            break
        level = name
    return level


def _arm_model(blocks: list[dict[str, str]]) -> tuple[str | None, str | None]:
    parts: list[str] = []
    vendor = None
    for block in blocks:
        impl = int(block["cpu implementer"], 16) if _hex(block.get("cpu implementer")) else None
        part = int(block["cpu part"], 16) if _hex(block.get("cpu part")) else None
        if impl is not None and vendor is None:
            vendor = ARM_IMPLEMENTERS.get(impl, f"0x{impl:02x}")
        if part is not None:
            label = (
                ARM_PARTS.get(part, f"part 0x{part:03x}") if impl == 0x41 else f"part 0x{part:03x}"
            )
            if label not in parts:
                parts.append(label)
    model = " + ".join(parts) if parts else None
    if model and vendor:
        model = f"{vendor} {model}"
    return model, vendor


def _hex(text: str | None) -> bool:
    return bool(text) and re.fullmatch(r"0x[0-9a-fA-F]{1,8}", text or "") is not None


def infer_arch(blocks: list[dict[str, str]], flags: list[str]) -> str | None:
    """The machine architecture a recorded /proc/cpuinfo implies (no uname there)."""
    if not blocks:
        return None
    if "lm" in flags:
        return "x86_64"
    vendor = _first(blocks, "vendor_id", "vendor") or ""
    if _first(blocks, "arch") == "IA-64":
        return "ia64"
    if vendor.startswith("IBM/S390"):
        return "s390x"
    if (_first(blocks, "cpu") or "").startswith(("POWER", "PPC")):
        return "ppc64"
    arch = _first(blocks, "cpu architecture")
    if arch == "8" or arch == "AArch64":
        return "aarch64"
    if arch and arch.isdigit():
        return "arm"
    if _first(blocks, "cpu family") == "PA-RISC":
        return "parisc"
    if vendor in ("GenuineIntel", "AuthenticAMD"):
        return "i686"
    return None


def online_cpus(dump: Dump) -> list[int]:
    """CPUs the kernel runs: cpu/online, else per-CPU online files, else cpuinfo."""
    listed = parse_cpulist(dump.value(f"{CPU_SYS}/online"))
    present = sorted(
        int(name[3:]) for name in dump.children(CPU_SYS) if re.fullmatch(r"cpu\d{1,6}", name)
    )
    if listed:
        return listed
    if present:
        # cpu0 often has no online file (it cannot be taken offline): absent means online.
        return [c for c in present if dump.value(f"{CPU_SYS}/cpu{c}/online") != "0"]
    blocks = parse_cpuinfo(dump.text("/proc/cpuinfo"))
    ids = sorted({n for b in blocks if (n := parse_int(b.get("processor"))) is not None})
    if ids:
        return ids
    count = parse_int(_first(blocks, "# processors"))
    return list(range(count)) if count else []


def _cluster(values: dict[int, int]) -> dict[int, int]:
    """Group CPUs whose values lie within KIND_TOLERANCE of each other -> cpu: group max."""
    groups: list[list[int]] = []
    for value in sorted(set(values.values())):
        if groups and value <= groups[-1][0] * (1 + KIND_TOLERANCE):
            groups[-1].append(value)
        else:
            groups.append([value])
    top = {v: g[-1] for g in groups for v in g}
    return {cpu: top[v] for cpu, v in values.items()}


def cpu_kinds(dump: Dump, online: list[int], vendor: str | None) -> list[CpuKind]:
    """Core kinds: the PMU's P/E split, else frequency (or capacity) groups, else one kind."""
    max_khz = {
        c: v
        for c in online
        if (v := parse_int(dump.value(f"{CPU_SYS}/cpu{c}/cpufreq/cpuinfo_max_freq")))
    }
    base_khz = {
        c: v
        for c in online
        if (v := parse_int(dump.value(f"{CPU_SYS}/cpu{c}/cpufreq/base_frequency")))
    }
    capacity = {
        c: v for c in online if (v := parse_int(dump.value(f"{CPU_SYS}/cpu{c}/cpu_capacity")))
    }

    def mhz(cpus: Iterable[int]) -> float | None:
        got = [max_khz[c] for c in cpus if c in max_khz]
        return max(got) / 1000 if got else None

    core = parse_cpulist(dump.value("/sys/devices/cpu_core/cpus"))
    atom = parse_cpulist(dump.value("/sys/devices/cpu_atom/cpus"))
    if core and atom:
        on = set(online)
        kinds = []
        for name, cpus in (("P", core), ("E", atom)):
            mine = sorted(on.intersection(cpus))
            if mine:
                kinds.append(CpuKind(name=name, cpus=mine, max_mhz=mhz(mine), source="pmu"))
        if kinds:
            return kinds

    keys: dict[int, tuple[int, int, int]] = {}
    max_group = _cluster(max_khz)
    cap_group = _cluster(capacity)
    for c in online:
        keys[c] = (base_khz.get(c, 0), max_group.get(c, 0), cap_group.get(c, 0))
    known = {c: k for c, k in keys.items() if k != (0, 0, 0)}
    distinct = sorted(set(known.values()), key=lambda k: (k[1], k[0], k[2]), reverse=True)
    if len(distinct) <= 1:
        return (
            [CpuKind(name="all", cpus=list(online), max_mhz=mhz(online), source="uniform")]
            if online
            else []
        )
    if len(distinct) == 2 and vendor == "GenuineIntel":
        names = ["P", "E"]  # Intel's hybrid parts: Performance and Efficient cores
    elif len(distinct) == 2:
        names = ["fast", "slow"]
    else:
        names = ["fast", *(f"mid{i}" for i in range(1, len(distinct) - 1)), "slow"]
    kinds = []
    for name, key in zip(names, distinct, strict=True):
        cpus = sorted(c for c, k in known.items() if k == key)
        kinds.append(CpuKind(name=name, cpus=cpus, max_mhz=mhz(cpus), source="frequency"))
    rest = sorted(set(online) - set(known))
    if rest:
        kinds.append(CpuKind(name="unknown", cpus=rest, max_mhz=None, source="frequency"))
    return kinds


def parse_cpu(dump: Dump, unknown: list[str]) -> Cpu:
    """The Cpu facts from the collector's dump; gaps are noted in ``unknown``."""
    blocks = parse_cpuinfo(dump.text("/proc/cpuinfo"))
    if "/proc/cpuinfo" not in dump.files:
        unknown.append("cpu: /proc/cpuinfo unreadable")
    flags_text = _first(blocks, "flags", "features") or ""
    flags = sorted(set(re.split(r"[\s,]+", flags_text.strip()))) if flags_text.strip() else []

    model = _first(blocks, "model name", "cpu", "processor")
    vendor = _first(blocks, "vendor_id", "vendor")
    if _first(blocks, "cpu implementer"):
        arm_model, arm_vendor = _arm_model(blocks)
        model = arm_model or model
        vendor = vendor or arm_vendor
    if model and re.fullmatch(r"\d+", model):
        model = None  # "processor : 0" is an index, not a model
    if model is None and vendor and vendor.startswith("IBM/S390"):
        machine = re.search(r"machine = (\w+)", dump.text("/proc/cpuinfo") or "")
        model = f"IBM S/390 machine {machine.group(1)}" if machine else "IBM S/390"

    arch = (dump.output("uname") or "").strip() or infer_arch(blocks, flags)
    online = online_cpus(dump)
    cpu = Cpu(model=model, vendor=vendor, arch=arch, flags=flags, online=online)
    cpu.threads = len(online) or None
    cpu.x86_64_level = x86_64_level(flags) if arch in ("x86_64", None) else None

    _topology(dump, cpu, online, blocks, unknown)
    max_khz = [
        v
        for c in online
        if (v := parse_int(dump.value(f"{CPU_SYS}/cpu{c}/cpufreq/cpuinfo_max_freq")))
    ]
    cpu.max_mhz = max(max_khz) / 1000 if max_khz else None
    cpu.kinds = cpu_kinds(dump, online, vendor)
    cpu.allowed = _allowed(dump)
    if not online:
        unknown.append("cpu: no online CPUs found")
    return cpu


def _topology(
    dump: Dump, cpu: Cpu, online: list[int], blocks: list[dict[str, str]], unknown: list[str]
) -> None:
    packages: set[int] = set()
    cores: set[tuple[int, int, int]] = set()
    sibling_groups: set[tuple[int, ...]] = set()
    missing = 0
    on = set(online)
    for c in online:
        base = f"{CPU_SYS}/cpu{c}/topology"
        pkg = parse_int(dump.value(f"{base}/physical_package_id"))
        core = parse_int(dump.value(f"{base}/core_id"))
        die = parse_int(dump.value(f"{base}/die_id")) or 0
        if pkg is None and core is None:
            missing += 1
            continue
        if pkg is None or pkg < 0:
            # -1 (s390, POWER): no package id; the CPUs sharing a package mask are one.
            mates = _mask(
                dump,
                base,
                ("package_cpus_list", "core_siblings_list"),
                ("package_cpus", "core_siblings"),
            )
            pkg = -1 - min(mates) if mates else 0
        packages.add(pkg)
        if core is not None:
            cores.add((pkg, die, core))
        siblings = _siblings(dump, base)
        if siblings:
            sibling_groups.add(tuple(s for s in siblings if s in on))
    if online and missing == 0:
        cpu.packages = len(packages)
        # The threads sharing a core say what a core is (hwloc reads the same
        # masks); core_id is only unique within a package, die or book, and
        # s390 and POWER number it per their own hierarchy.
        cpu.cores = len(sibling_groups) or len(cores) or None
        return
    # No sysfs topology (old kernels, some recordings): cpuinfo's physical id / core id.
    phys = {(b.get("physical id"), b.get("core id")) for b in blocks if "physical id" in b}
    if phys:
        cpu.packages = len({p for p, _ in phys})
        cpu.cores = len(phys) if all(core is not None for _, core in phys) else None
    else:
        unknown.append("cpu.packages, cpu.cores: no topology in sysfs or cpuinfo")


def _siblings(dump: Dump, base: str) -> list[int] | None:
    """The hardware threads of this CPU's core, from whichever mask the kernel has."""
    return _mask(
        dump, base, ("thread_siblings_list", "core_cpus_list"), ("thread_siblings", "core_cpus")
    )


def _mask(
    dump: Dump, base: str, lists: tuple[str, ...], masks: tuple[str, ...]
) -> list[int] | None:
    for name in lists:
        got = parse_cpulist(dump.value(f"{base}/{name}"))
        if got:
            return got
    for name in masks:
        got = parse_cpumask(dump.value(f"{base}/{name}"))
        if got:
            return got
    return None


def _allowed(dump: Dump) -> list[int]:
    status = dump.text("/proc/self/status") or ""
    m = re.search(r"(?m)^Cpus_allowed_list:\s*(\S+)\s*$", status)
    got = parse_cpulist(m.group(1)) if m else None
    return got or []
