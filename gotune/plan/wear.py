"""Whether the periodic SSD wear check runs on the host, and how.

The check guards the flash the module mirror writes to, so by default it runs
when the mirror does (``gotune_wear_enabled`` overrides). Where systemd runs, a
timer starts it; elsewhere (WSL2 without systemd, containers) cron does.
"""

from __future__ import annotations

from gotune.facts.model import Facts
from gotune.plan.model import WearCheck
from gotune.settings import Settings

# Hourly: percentage used moves in weeks, but hourly write counters show a day's
# pattern, and one smartctl call per drive an hour costs nothing.
SCHEDULE = "hourly"


def plan_wear(facts: Facts, settings: Settings) -> WearCheck:
    """Install the hourly wear check when the settings ask for it (or remove nothing)."""
    runner = "systemd" if facts.platform.systemd else "cron"
    installed = facts.gotune.wear
    used = [f"gotune_wear_enabled={settings.wear_enabled}",
            f"gotune_mirror_enabled={settings.mirror_enabled}",
            f"platform.systemd={facts.platform.systemd}"]  # fmt: skip
    if not settings.wear_check:
        why = ("gotune_wear_enabled is false" if settings.wear_enabled is False
               else "no mirror writes to this host's disks (gotune_mirror_enabled is false)")
        return WearCheck(key="wear", value=None, medium="none", reason=f"no wear check: {why}",
                         facts_used=used, current=installed, runner=runner)  # fmt: skip
    why = "the mirror writes to this host's flash" if settings.wear_enabled is None else (
        "gotune_wear_enabled is true")
    return WearCheck(
        key="wear", value=SCHEDULE, medium=f"{runner} {'timer' if runner == 'systemd' else 'job'}",
        reason=f"an {SCHEDULE} SMART/eMMC wear check ({why}); the mirror backs off at warn "
        "and stops caching at critical",
        facts_used=used, change=installed != runner, current=installed, runner=runner,
    )  # fmt: skip
