"""Memory facts: totals and the installed modules (type, speed, size, slot).

Modules come from the first source that answers: ``dmidecode -t 17`` (needs
root), udev's ``MEMORY_DEVICE_*`` properties of the DMI device
(/run/udev/data/+dmi:id, readable by anyone), or the kernel's EDAC DIMM list.
"""

from __future__ import annotations

import re

from gotune.facts.collect import Dump
from gotune.facts.model import Memory, MemoryModule
from gotune.facts.sysfs import key_values, meminfo_bytes, parse_int

EDAC_SYS = "/sys/devices/system/edac/mc"

# JEDEC's LPDDR5 tops out at 6400 MT/s; faster parts are LPDDR5X, which SMBIOS
# tables written before the LPDDR5X type code existed still call "LPDDR5".
LPDDR5_MAX_MTS = 6400

_UNITS = {
    "B": 1,
    "KB": 1 << 10,
    "MB": 1 << 20,
    "GB": 1 << 30,
    "TB": 1 << 40,
    "KIB": 1 << 10,
    "MIB": 1 << 20,
    "GIB": 1 << 30,
    "TIB": 1 << 40,
}
_TYPE = re.compile(r"(LP)?DDR\d[Xx]?|HBM\d?|SDRAM|RDRAM", re.IGNORECASE)


def _size(text: str | None) -> int | None:
    m = re.fullmatch(r"\s*(\d{1,12})\s*([KMGT]i?B|B)\s*", text or "", re.IGNORECASE)
    return int(m.group(1)) * _UNITS[m.group(2).upper()] if m else None


def _speed(text: str | None) -> int | None:
    m = re.fullmatch(r"\s*(\d{1,6})\s*(MT/s|MHz)?\s*", text or "")
    return int(m.group(1)) if m and int(m.group(1)) > 0 else None


def _type(text: str | None) -> str | None:
    m = _TYPE.search(text or "")
    if not m:
        return None
    t = m.group(0).upper()
    return t[:-1] + "x" if t.endswith("X") else t


def _infer_lpddr5x(module: MemoryModule) -> None:
    if module.type == "LPDDR5" and module.speed_mts and module.speed_mts > LPDDR5_MAX_MTS:
        module.type = "LPDDR5x"
        module.type_inferred = True


def parse_dmidecode(text: str | None) -> list[MemoryModule]:
    """Populated ``Memory Device`` blocks of ``dmidecode -t 17``."""
    modules = []
    for block in re.split(r"\n(?=Handle )", text or ""):
        if "Memory Device" not in block:
            continue
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.strip().partition(":")
            if sep:
                fields.setdefault(key.strip(), value.strip())
        size = _size(fields.get("Size"))
        if not size:
            continue  # "No Module Installed"
        speed = _speed(fields.get("Speed")) or _speed(fields.get("Configured Memory Speed"))
        modules.append(
            MemoryModule(
                type=_type(fields.get("Type")),
                speed_mts=speed,
                size_bytes=size,
                locator=fields.get("Locator") or None,
            )
        )
    return modules


def parse_udev_memory(text: str | None) -> list[MemoryModule]:
    """``E:MEMORY_DEVICE_N_*`` lines of udev's database entry for the DMI device."""
    props = key_values(
        "\n".join(line[2:] for line in (text or "").splitlines() if line.startswith("E:"))
    )
    slots: dict[int, dict[str, str]] = {}
    for key, value in props.items():
        m = re.fullmatch(r"MEMORY_DEVICE_(\d{1,4})_(\w+)", key)
        if m:
            slots.setdefault(int(m.group(1)), {})[m.group(2)] = value
    modules = []
    for _, slot in sorted(slots.items()):
        size = parse_int(slot.get("SIZE"))
        if slot.get("PRESENT") == "0" or not size:
            continue
        speed = parse_int(slot.get("SPEED_MTS")) or parse_int(slot.get("CONFIGURED_SPEED_MTS"))
        modules.append(
            MemoryModule(
                type=_type(slot.get("MEMORY_TYPE")),
                speed_mts=speed or None,
                size_bytes=size,
                locator=slot.get("LOCATOR") or None,
            )
        )
    return modules


def parse_edac(dump: Dump) -> list[MemoryModule]:
    """DIMMs the EDAC driver lists (type and size; no speed)."""
    modules = []
    for mc in dump.children(EDAC_SYS):
        for dimm in dump.children(f"{EDAC_SYS}/{mc}"):
            base = f"{EDAC_SYS}/{mc}/{dimm}"
            size_mb = parse_int(dump.value(f"{base}/size"))
            if not size_mb:
                continue
            modules.append(
                MemoryModule(
                    type=_type(dump.value(f"{base}/dimm_mem_type")),
                    size_bytes=size_mb << 20,
                    locator=dump.value(f"{base}/dimm_label") or dump.value(f"{base}/dimm_location"),
                )
            )
    return modules


def parse_memory(dump: Dump, unknown: list[str]) -> Memory:
    meminfo = dump.text("/proc/meminfo")
    memory = Memory(
        total_bytes=meminfo_bytes(meminfo, "MemTotal"),
        available_bytes=meminfo_bytes(meminfo, "MemAvailable"),
    )
    if memory.total_bytes is None:
        unknown.append("memory.total_bytes: /proc/meminfo unreadable")
    why = []
    dmi = dump.output("dmidecode")
    if dmi is not None and (mods := parse_dmidecode(dmi)):
        memory.modules, memory.source = mods, "dmidecode"
    elif mods := parse_udev_memory(dump.text("/run/udev/data/+dmi:id")):
        memory.modules, memory.source = mods, "udev"
    elif mods := parse_edac(dump):
        memory.modules, memory.source = mods, "edac"
    else:
        uid = (dump.output("id") or "").strip()
        if "dmidecode" in dump.commands:
            why.append("dmidecode lists none")
        elif uid == "0":
            why.append("dmidecode not installed")
        else:
            why.append("dmidecode needs root" if dump.live else "no dmidecode for a recorded tree")
        why.append("no udev memory properties")
        why.append("no EDAC DIMMs")
        unknown.append("memory.modules: " + "; ".join(why))
    for module in memory.modules:
        _infer_lpddr5x(module)
    if any(m.type_inferred for m in memory.modules):
        unknown.append(
            f"memory.modules.type: LPDDR5x inferred from LPDDR5 above {LPDDR5_MAX_MTS} MT/s"
        )
    return memory
