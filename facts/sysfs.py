"""Small tolerant readers for the value formats of sysfs and procfs.

Every function returns None (or an empty result) for text it cannot read;
none of them raises on garbage.
"""

from __future__ import annotations

import re

# A cpulist longer than this is garbage, not a machine: the Linux kernel's
# NR_CPUS limit is 8192, so a range past it must not make us allocate millions.
MAX_CPU_ID = 1 << 16

_RANGE = re.compile(r"(\d+)(?:-(\d+))?(?::(\d+)/(\d+))?")


def parse_int(text: str | None) -> int | None:
    """A decimal integer, or None ("", "max", junk)."""
    if text is None:
        return None
    text = text.strip()
    if not re.fullmatch(r"-?\d{1,20}", text):
        return None
    return int(text)


def parse_cpulist(text: str | None) -> list[int] | None:
    """``0-3,8,10-11`` (and the ``0-7:2/4`` stride form) -> sorted ids; None when garbled."""
    if text is None:
        return None
    text = text.strip()
    if not text:
        return []
    cpus: set[int] = set()
    for part in text.split(","):
        m = _RANGE.fullmatch(part.strip())
        if not m:
            return None
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else first
        if last < first or last > MAX_CPU_ID:
            return None
        if m.group(3):
            used, group = int(m.group(3)), int(m.group(4))
            if group <= 0:
                return None
            cpus.update(c for c in range(first, last + 1) if (c - first) % group < used)
        else:
            cpus.update(range(first, last + 1))
    return sorted(cpus)


def parse_cpumask(text: str | None) -> list[int] | None:
    """A hex mask in 32-bit words, most significant first (``00000000,000000ff``)."""
    if text is None:
        return None
    words = text.strip().split(",")
    if not words or len(words) * 32 > MAX_CPU_ID:
        return None
    value = 0
    for word in words:
        word = word.strip()
        if not re.fullmatch(r"[0-9a-fA-F]{1,8}", word):
            return None
        value = (value << 32) | int(word, 16)
    return [i for i in range(value.bit_length()) if value >> i & 1]


def meminfo_bytes(text: str | None, key: str) -> int | None:
    """``KEY: N kB`` from /proc/meminfo or a node's meminfo (``Node 0 KEY: N kB``)."""
    if text is None:
        return None
    m = re.search(rf"(?m)^(?:Node \d+ )?{re.escape(key)}:\s+(\d{{1,20}})(?:\s*kB)?\s*$", text)
    return int(m.group(1)) * 1024 if m else None


def key_values(text: str | None, sep: str = "=") -> dict[str, str]:
    """``KEY=VALUE`` lines (first occurrence wins); other lines are ignored."""
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        key, found, value = line.partition(sep)
        if found and key and key not in out:
            out[key.strip()] = value
    return out
