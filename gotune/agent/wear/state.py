"""The small wear state file the periodic check writes and the mirror reads.

One JSON object: the worst wear status over the host's drives, why, and the
daily write budget the mirror may spend on caching new artefacts at ``warn``.
Reading never raises: a missing or garbled file means "unknown" (the mirror
then behaves as if no wear check had run).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gotune.agent.fsutil import write_atomic
from gotune.agent.paths import WEAR_STATE

STATUSES = ("ok", "warn", "critical", "unknown")

# How bad each status is when a host's drives are combined: the worst drive decides.
# "unknown" (a virtual disk, a USB stick smartctl cannot read) never outranks a drive
# that was read; the host is "unknown" only when no drive could be read.
STATUS_RANK = {"unknown": -1, "ok": 0, "warn": 1, "critical": 2}

# At "warn" the mirror may still cache new artefacts, up to 1 GiB a day (when the
# check names no other budget): room for dozens of new module versions, yet a
# thousandth of a 1 TB drive's rated daily writes.
WARN_WRITE_BUDGET_BYTES = 1 << 30

# The gauges a cache's WearGuard sets (the mirror's, the build cache's): name -> type, help.
WEAR_METRICS: dict[str, tuple[str, str]] = {
    "caching_enabled": ("gauge", "1 when new artefacts are stored, 0 when they are not."),
    "wear_status": ("gauge", "1 for the current SSD wear status of the cache's host."),
    "daily_written_bytes": ("gauge", "Bytes written to the cache today (UTC)."),
    "daily_write_budget_bytes": ("gauge", "Today's write budget at wear status warn (-1: none)."),
}


@dataclass(frozen=True)
class WearState:
    """What the mirror needs to know about the host's flash wear."""

    status: str  # "ok" | "warn" | "critical" | "unknown"
    reason: str
    daily_write_budget_bytes: int | None
    updated: float  # unix time of the reading

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _unknown(reason: str) -> WearState:
    return WearState(status="unknown", reason=reason, daily_write_budget_bytes=None, updated=0.0)


def read_wear_state(path: Path | str = WEAR_STATE) -> WearState:
    """Read the state file; anything missing or malformed gives status "unknown"."""
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return _unknown(f"no wear state at {p} (wear check not run yet)")
    except (OSError, UnicodeDecodeError) as exc:
        return _unknown(f"cannot read wear state {p}: {exc}")
    try:
        data = json.loads(raw)
    except ValueError:
        return _unknown(f"wear state {p} is not JSON")
    if not isinstance(data, dict):
        return _unknown(f"wear state {p} is not a JSON object")
    status = data.get("status")
    if status not in STATUSES:
        return _unknown(f"wear state {p} has no valid status")
    reason = data.get("reason")
    budget = data.get("daily_write_budget_bytes")
    updated = data.get("updated")
    bad_budget = isinstance(budget, bool) or not isinstance(budget, int) or budget < 0
    if budget is not None and bad_budget:
        return _unknown(f"wear state {p} has an invalid daily_write_budget_bytes")
    if isinstance(updated, bool) or not isinstance(updated, (int, float)):
        updated = 0.0
    return WearState(
        status=str(status),
        reason=reason if isinstance(reason, str) else "",
        daily_write_budget_bytes=budget,
        updated=float(updated),
    )


def write_wear_state(state: WearState, path: Path | str = WEAR_STATE) -> None:
    """Write the state file atomically (used by the periodic check)."""
    if state.status not in STATUSES:
        raise ValueError(f"invalid wear status {state.status!r}")
    write_atomic(path, json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n")


def worst_status(statuses: list[str]) -> str:
    """The worst of several statuses; "unknown" when none is known."""
    if not statuses:
        return "unknown"
    return max(statuses, key=lambda s: STATUS_RANK.get(s, STATUS_RANK["unknown"]))
