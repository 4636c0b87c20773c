"""A host's hardware class for the fleet report: CPU model, storage class, RAM.

Hosts of one class should see the same effect of the tuning; the report groups each
benchmark's tuned/default ratios by class, so where the tuning helps and where it does
nothing shows at a glance.
"""

from __future__ import annotations

from typing import Any

from gotune.facts.model import Facts

GIB = 1024**3
# Where the Go caches live decides what tuning can do: the developer's GOCACHE first,
# then the home directory (where Go puts its caches by default); when neither says (a
# container's overlay root), the machine's first fixed disk of a known class.
STORAGE_PATHS = ("gocache", "home")
UNKNOWN = "unknown"


def hardware_class(facts: Facts) -> dict[str, Any]:
    """``{"cpu": model, "storage": class, "ram_gib": n, "label": "…"}`` from a host's facts.

    + facts: what ``gotune facts`` found on the host
    """
    cpu = " ".join((facts.cpu.model or "unknown CPU").split())
    paths = [facts.storage.paths[k].class_ for k in STORAGE_PATHS if k in facts.storage.paths]
    disks = [d.class_ for d in facts.storage.devices if not d.removable]
    storage = next((c for c in [*paths, *disks] if c != UNKNOWN), UNKNOWN)
    total = facts.memory.total_bytes
    ram = round(total / GIB) if total else None
    ram_text = f"{ram} GiB" if ram is not None else "? GiB"
    return {"cpu": cpu, "storage": storage, "ram_gib": ram,
            "label": f"{cpu} · {storage} · {ram_text}"}  # fmt: skip
