"""The wear check's metrics for node_exporter's textfile collector (``gotune_wear.prom``).

Rendered by ``gotune.agent.prom``. node_exporter reads ``*.prom`` files from its
``--collector.textfile.directory``; the file is written to a temporary name and
renamed so a scrape never sees half of it (node_exporter's documented convention).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from gotune.agent.fsutil import write_atomic
from gotune.agent.prom import Exposition
from gotune.agent.wear.state import STATUSES, WearState

METRICS_FILE = "gotune_wear.prom"


def render(devices: Iterable[dict[str, object]], state: WearState) -> str:
    """The whole metrics file from the check's per-device results and the host state."""
    ex = Exposition()
    for dev in devices:
        labels = {
            "device": str(dev.get("device") or ""),
            "model": str(dev.get("model") or ""),
            "serial": str(dev.get("serial") or ""),
            "kind": str(dev.get("kind") or ""),
        }
        status = str(dev.get("wear_status"))
        for s in STATUSES:
            ex.add(
                "gotune_wear_status",
                "gauge",
                "1 for the drive's current wear status (ok, warn, critical, unknown).",
                {**labels, "status": s},
                1 if s == status else 0,
            )
        gauges: list[tuple[str, str, str, object]] = [
            (
                "gotune_wear_percentage_used",
                "gauge",
                "Share of the drive's rated endurance used, percent.",
                dev.get("percentage_used"),
            ),
            (
                "gotune_wear_bytes_written_total",
                "counter",
                "Bytes the host wrote to the drive over its life.",
                dev.get("bytes_written"),
            ),
            (
                "gotune_wear_available_spare_percent",
                "gauge",
                "Spare blocks left, percent of the original spare area.",
                dev.get("available_spare"),
            ),
            (
                "gotune_wear_media_errors_total",
                "counter",
                "Unrecovered media errors the drive reported.",
                dev.get("media_errors"),
            ),
            (
                "gotune_wear_write_rate_bytes_per_day",
                "gauge",
                "Bytes written per day over the rate window.",
                dev.get("write_rate_bytes_per_day"),
            ),
            (
                "gotune_wear_projected_full_timestamp_seconds",
                "gauge",
                "When the drive is projected to reach 100% used (unix time).",
                dev.get("projected_full_timestamp"),
            ),
        ]
        health = dev.get("health_passed")
        if isinstance(health, bool):
            gauges.append(
                (
                    "gotune_wear_smart_health_passed",
                    "gauge",
                    "1 when the SMART overall health check passed.",
                    int(health),
                )
            )
        for name, kind, help_text, value in gauges:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                ex.add(name, kind, help_text, labels, value)
    for s in STATUSES:
        ex.add(
            "gotune_wear_host_status",
            "gauge",
            "1 for the host's worst drive wear status.",
            {"status": s},
            1 if s == state.status else 0,
        )
    if state.daily_write_budget_bytes is not None:
        ex.add(
            "gotune_wear_daily_write_budget_bytes",
            "gauge",
            "Bytes per day the mirror may write to its cache at this wear status.",
            {},
            state.daily_write_budget_bytes,
        )
    ex.add(
        "gotune_wear_last_check_timestamp_seconds",
        "gauge",
        "When the wear check last ran (unix time).",
        {},
        state.updated,
    )
    return ex.text()


def write_metrics(directory: Path, text: str) -> Path:
    """Write ``gotune_wear.prom`` atomically into the textfile collector directory."""
    path = directory / METRICS_FILE
    write_atomic(path, text)
    return path
