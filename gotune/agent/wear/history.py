"""The reading history on the host (JSON lines), the write rate and the 100%-used projection.

One line per drive per check. A drive is keyed by model+serial, so a drive
swapped into the same slot starts a new series; a counter that goes backwards
(a firmware reset) ends an interval instead of producing a negative rate.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gotune.agent.fsutil import write_atomic
from gotune.agent.wear.record import DeviceWear

DAY_S = 86_400.0

# The write rate covers a week: long enough to include a working week's builds
# and the weekend lull, short enough to show a change in habits soon.
RATE_WINDOW_DAYS = 7

# A rate over less than an hour measures a burst (one big `go build`), not a habit.
MIN_RATE_SPAN_S = 3_600.0

# percentage_used is an integer that moves one step in weeks; a season of
# readings lets it move a few times while still following a change in workload.
PROJECTION_WINDOW_DAYS = 90

# A trend over less than a day is noise (and usually a single step).
MIN_PROJECTION_SPAN_S = DAY_S

# Past a century the projection says nothing useful and would overflow a date.
MAX_PROJECTION_DAYS = 36_500

# Keep a year of readings (plus a margin) for the projection and for comparing
# with last year; older lines are dropped when the file is rewritten.
HISTORY_KEEP_DAYS = 400


@dataclass(frozen=True)
class Reading:
    t: float
    key: str
    percentage_used: int | None
    bytes_written: int | None


def reading_line(rec: DeviceWear, now: float) -> dict[str, Any]:
    """The JSON object appended to the history for one drive."""
    return {
        "t": now,
        "key": rec.history_key(),
        "device": rec.device,
        "model": rec.model,
        "serial": rec.serial,
        "kind": rec.kind,
        "percentage_used": rec.percentage_used,
        "bytes_written": rec.bytes_written,
        "wear_status": rec.wear_status,
    }


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def load(path: Path) -> list[Reading]:
    """Every well-formed line of the history; a torn or garbled line is skipped."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        t, key = obj.get("t"), obj.get("key")
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not isinstance(key, str):
            continue
        out.append(
            Reading(
                t=float(t),
                key=key,
                percentage_used=_opt_int(obj.get("percentage_used")),
                bytes_written=_opt_int(obj.get("bytes_written")),
            )
        )
    out.sort(key=lambda r: r.t)
    return out


def append(path: Path, lines: list[dict[str, Any]], now: float) -> None:
    """Append readings; rewrite the file without old lines when it holds any."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    _prune(path, now)


def _prune(path: Path, now: float) -> None:
    cutoff = now - HISTORY_KEEP_DAYS * DAY_S
    raw = path.read_text(encoding="utf-8", errors="replace").splitlines()
    kept = []
    for line in raw:
        try:
            obj = json.loads(line)
            t = obj.get("t") if isinstance(obj, dict) else None
        except ValueError:
            continue  # a torn line from an interrupted write
        if isinstance(t, (int, float)) and t >= cutoff:
            kept.append(line)
    if len(kept) != len(raw):
        write_atomic(path, "".join(line + "\n" for line in kept))


@dataclass(frozen=True)
class Trend:
    write_rate_bytes_per_day: float | None
    write_rate_reason: str
    projected_full_date: str | None  # ISO date the drive reaches 100% used
    projected_full_days: float | None
    projection_reason: str


def write_rate(readings: list[Reading], now: float) -> tuple[float | None, str]:
    """Bytes per day over the last RATE_WINDOW_DAYS from one drive's readings (sorted)."""
    start = now - RATE_WINDOW_DAYS * DAY_S
    pts = [(r.t, r.bytes_written) for r in readings if r.t >= start and r.bytes_written is not None]
    # Index loop, not itertools.pairwise (3.10+): the agent also runs on Python 3.9 targets.
    if len(pts) < 2:
        return None, "fewer than two readings with bytes written in the window"
    written = 0
    span = 0.0
    resets = 0
    for i in range(1, len(pts)):
        (t0, b0), (t1, b1) = pts[i - 1], pts[i]
        if b1 < b0:
            resets += 1  # counter reset: this interval's writes are unknown
            continue
        written += b1 - b0
        span += t1 - t0
    if span < MIN_RATE_SPAN_S:
        return None, f"readings span {span / 3600:.1f} h, less than {MIN_RATE_SPAN_S / 3600:.0f} h"
    note = f"; {resets} counter reset(s) skipped" if resets else ""
    days = span / DAY_S
    return written / days, f"over {days:.1f} days ({len(pts)} readings){note}"


def projection(readings: list[Reading], now: float) -> tuple[str | None, float | None, str]:
    """When percentage_used reaches 100, by a least-squares line over the window."""
    start = now - PROJECTION_WINDOW_DAYS * DAY_S
    pts = [
        (r.t, float(r.percentage_used))
        for r in readings
        if r.t >= start and r.percentage_used is not None
    ]
    if len(pts) < 2:
        return None, None, "fewer than two readings of percentage used"
    span = pts[-1][0] - pts[0][0]
    if span < MIN_PROJECTION_SPAN_S:
        return None, None, "readings span less than a day"
    current = pts[-1][1]
    if current >= 100:
        return _date(now), 0.0, "already at or past 100% used"
    n = len(pts)
    mean_t = sum(t for t, _ in pts) / n
    mean_p = sum(p for _, p in pts) / n
    var = sum((t - mean_t) ** 2 for t, _ in pts)
    cov = sum((t - mean_t) * (p - mean_p) for t, p in pts)
    slope_per_day = cov / var * DAY_S if var > 0 else 0.0
    if slope_per_day <= 0:
        return None, None, "no upward trend in percentage used"
    days = (100.0 - current) / slope_per_day
    if days > MAX_PROJECTION_DAYS:
        return None, None, f"more than {MAX_PROJECTION_DAYS // 365} years away"
    reason = f"{slope_per_day:.3f} %/day over {span / DAY_S:.1f} days ({n} readings)"
    return _date(now + days * DAY_S), days, reason


def _date(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).date().isoformat()


def trend(readings: list[Reading], key: str, now: float) -> Trend:
    """Write rate and projection for one drive (readings of all drives, sorted by time)."""
    mine = [r for r in readings if r.key == key]
    rate, rate_reason = write_rate(mine, now)
    date, days, why = projection(mine, now)
    return Trend(rate, rate_reason, date, days, why)
