"""The periodic wear check: record readings, compute trends, write metrics and the state file.

Run by the systemd timer (or cron) as
``python3 /opt/gotune/gotune.pyz wear --record --state-dir DIR --textfile-dir DIR``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gotune.agent.paths import WEAR_STATE
from gotune.agent.wear import history, metrics
from gotune.agent.wear.record import DeviceWear
from gotune.agent.wear.state import (
    WARN_WRITE_BUDGET_BYTES,
    WearState,
    worst_status,
    write_wear_state,
)

# The files in a state directory (``--state-dir``, by default WEAR_STATE's).
HISTORY_FILE = "history.jsonl"
STATE_FILE = os.path.basename(WEAR_STATE)
LOCK_FILE = ".lock"

# Tests (and anyone replaying history) set the clock with this variable (unix seconds).
CLOCK_ENV = "GOTUNE_WEAR_NOW"


def now_from_env() -> float:
    """The check's clock: GOTUNE_WEAR_NOW when set (ValueError if malformed), else time.time()."""
    raw = os.environ.get(CLOCK_ENV)
    if raw is None or raw == "":
        return time.time()
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{CLOCK_ENV} must be unix seconds, not {raw!r}")
    return value


@dataclass(frozen=True)
class CheckResult:
    devices: list[dict[str, Any]]
    state: WearState
    history_path: Path
    state_path: Path
    metrics_path: Path | None

    def to_json(self) -> dict[str, Any]:
        return {
            "devices": self.devices,
            "state": self.state.to_json(),
            "history": str(self.history_path),
            "state_file": str(self.state_path),
            "metrics_file": str(self.metrics_path) if self.metrics_path else None,
        }


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """One check at a time per state dir (a manual run may overlap the timer)."""
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def host_state(records: list[DeviceWear], now: float, write_budget: int) -> WearState:
    """The worst drive's status, why, and the mirror's daily write budget at that status."""
    status = worst_status([r.wear_status for r in records])
    if status == "unknown":
        reasons = [f"{r.device}: {r.reason}" for r in records] or ["no drives found"]
        return WearState("unknown", "; ".join(reasons), None, now)
    worst = [r for r in records if r.wear_status == status]
    reason = "; ".join(f"{r.device} ({r.model or r.kind}): {r.reason}" for r in worst)
    unread = sum(1 for r in records if r.wear_status == "unknown")
    if unread:
        reason += f"; {unread} drive(s) unreadable"
    budget: int | None = {"ok": None, "warn": write_budget, "critical": 0}[status]
    return WearState(status, reason, budget, now)


def with_trends(
    records: list[DeviceWear], readings: list[history.Reading], now: float
) -> list[dict[str, Any]]:
    """Each drive's JSON record plus its write rate and projection from the history."""
    devices = []
    for rec in records:
        item = rec.to_json()
        if rec.source != "none":
            tr = history.trend(readings, rec.history_key(), now)
            rate = tr.write_rate_bytes_per_day
            item["write_rate_bytes_per_day"] = round(rate) if rate is not None else None
            item["write_rate_reason"] = tr.write_rate_reason
            item["projected_full_date"] = tr.projected_full_date
            days = tr.projected_full_days
            item["projected_full_timestamp"] = (
                round(now + days * history.DAY_S) if days is not None else None
            )
            item["projection_reason"] = tr.projection_reason
        devices.append(item)
    return devices


def run_check(
    records: list[DeviceWear],
    state_dir: Path,
    textfile_dir: Path | None,
    now: float,
    write_budget: int = WARN_WRITE_BUDGET_BYTES,
) -> CheckResult:
    """Append the readings, compute trends, write the state file and the metrics."""
    state_dir.mkdir(parents=True, exist_ok=True)
    history_path = state_dir / HISTORY_FILE
    state_path = state_dir / STATE_FILE
    with _locked(state_dir):
        readable = [r for r in records if r.source != "none"]
        history.append(history_path, [history.reading_line(r, now) for r in readable], now)
        devices = with_trends(records, history.load(history_path), now)
        state = host_state(records, now, write_budget)
        write_wear_state(state, state_path)
        metrics_path = None
        if textfile_dir is not None:
            metrics_path = metrics.write_metrics(textfile_dir, metrics.render(devices, state))
    return CheckResult(devices, state, history_path, state_path, metrics_path)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="seconds")
