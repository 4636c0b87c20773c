"""Wear thresholds and the rule that turns one drive's reading into ok/warn/critical/unknown."""

from __future__ import annotations

from dataclasses import dataclass

from gotune.agent.wear.record import DeviceWear

# Warn at 80% of rated endurance: vendors rate TBW with margin, but the last fifth
# is when spare blocks retire fastest; at a developer's typical write rate 80%
# still leaves months to order a replacement.
WARN_PERCENT = 80

# Critical at 90%: the same point at which eMMC raises PRE_EOL "urgent" (90% of
# reserved blocks consumed, JEDEC JESD84-B51); past it a drive may go read-only.
CRITICAL_PERCENT = 90

# Warn when half the spare area is gone: healthy drives report 95-100% for
# most of their life, so 50% means blocks are retiring far faster than normal.
SPARE_WARN_PERCENT = 50

# One unrecovered media error already means data was lost; adding cache writes to
# such a drive is the wrong trade. Settable (0 turns the rule off).
MEDIA_ERRORS_CRITICAL = 1

# eMMC PRE_EOL_INFO values (JEDEC JESD84-B51 EXT_CSD[267]).
PRE_EOL_NORMAL, PRE_EOL_WARNING, PRE_EOL_URGENT = 1, 2, 3


@dataclass(frozen=True)
class Thresholds:
    """The status thresholds, from settings or these defaults."""

    warn_percent: int = WARN_PERCENT
    critical_percent: int = CRITICAL_PERCENT
    spare_warn_percent: int = SPARE_WARN_PERCENT
    media_errors_critical: int = MEDIA_ERRORS_CRITICAL

    def check(self) -> None:
        """Raise ValueError when the thresholds contradict each other."""
        if not 0 < self.warn_percent <= self.critical_percent:
            raise ValueError(
                f"warn percent ({self.warn_percent}) must be > 0 and <= critical percent "
                f"({self.critical_percent})"
            )
        if not 0 <= self.spare_warn_percent <= 100:
            raise ValueError(f"spare warn percent must be 0-100, not {self.spare_warn_percent}")
        if self.media_errors_critical < 0:
            raise ValueError("media errors threshold must be >= 0")


def classify(rec: DeviceWear, th: Thresholds) -> None:
    """Set ``rec.wear_status`` and ``rec.reason`` from what was read (in place).

    An unreadable drive keeps status "unknown" with the reason already recorded.
    """
    if rec.source == "none":
        rec.wear_status = "unknown"
        return
    critical: list[str] = []
    warn: list[str] = []
    if rec.health_passed is False:
        critical.append("SMART overall health check FAILED")
    critical.extend(rec.warnings)
    spare, spare_th = rec.available_spare, rec.available_spare_threshold
    if spare is not None and spare_th is not None and spare_th > 0 and spare < spare_th:
        critical.append(f"available spare {spare}% below the drive's threshold {spare_th}%")
    elif spare is not None and spare < th.spare_warn_percent:
        warn.append(f"available spare {spare}% (warn below {th.spare_warn_percent}%)")
    if (
        rec.media_errors is not None
        and th.media_errors_critical > 0
        and rec.media_errors >= th.media_errors_critical
    ):
        critical.append(f"{rec.media_errors} unrecovered media error(s)")
    pct = rec.percentage_used
    if pct is not None:
        if pct >= th.critical_percent:
            critical.append(f"{pct}% of rated endurance used (critical at {th.critical_percent}%)")
        elif pct >= th.warn_percent:
            warn.append(f"{pct}% of rated endurance used (warn at {th.warn_percent}%)")
    if rec.pre_eol == PRE_EOL_URGENT:
        critical.append("eMMC pre-EOL urgent (90% of reserved blocks consumed)")
    elif rec.pre_eol == PRE_EOL_WARNING:
        warn.append("eMMC pre-EOL warning (80% of reserved blocks consumed)")

    if critical:
        rec.wear_status, rec.reason = "critical", "; ".join(critical + warn)
    elif warn:
        rec.wear_status, rec.reason = "warn", "; ".join(warn)
    elif pct is not None:
        rec.wear_status = "ok"
        rec.reason = f"{pct}% of rated endurance used (warn at {th.warn_percent}%)"
    elif rec.kind == "hdd" or (rec.kind == "sas" and (rec.rotation_rate or 0) > 0):
        rec.wear_status = "ok"
        health = "SMART health passed" if rec.health_passed else "SMART health not reported"
        rec.reason = f"spinning disk: no flash wear; {health}"
    else:
        rec.wear_status = "unknown"
        rec.reason = rec.reason or "the drive reports no wear indicator gotune can read"
