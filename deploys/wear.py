"""The wear component: the periodic SSD wear check (the agent, smartmontools, a schedule).

Save → apply → verify → undo, side by side:

- plan: ``gotune/plan/wear.py`` (when the mirror writes to this host's flash, or asked)
- apply: here — where systemd runs a ``gotune-wear.timer`` starts
  ``gotune-wear.service`` hourly (``templates/wear-check.*.j2``); elsewhere (WSL2
  without systemd, containers) ``/etc/cron.d/gotune-wear`` does. Each run is
  ``python3 /opt/gotune/gotune.pyz wear --record ...``: readings appended to
  ``/var/lib/gotune/wear/history.jsonl``, the state file the mirror reads, and
  node_exporter metrics. A first reading is taken at once.
- verify: ``gotune/verify/checks/wear.py`` (the check ran recently)
- undo: units, the cron file, the agent, the state directory, the metrics file (and
  the textfile directory, removed only while empty) and smartmontools when gotune
  installed it are recorded

Idempotent: a second run changes nothing. Alone: ``pyinfra INVENTORY deploys/wear.py``.
"""

from __future__ import annotations

import shlex
import zlib

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File, Link
from pyinfra.facts.server import Which
from pyinfra.operations import files, systemd

from gotune.agent.paths import (
    AGENT_DIR,
    AGENT_PATH,
    WEAR_CRON,
    WEAR_STATE,
    WEAR_STATE_DIR,
    WEAR_TIMER,
)
from gotune.agent.wear.metrics import METRICS_FILE
from gotune.agent.wear.status import Thresholds
from gotune.deploys.agent import install_agent, python3_path
from gotune.operations import state
from gotune.operations.render import render
from gotune.operations.wear import first_reading
from gotune.plan.model import HostPlan
from gotune.settings import Settings

UNIT = "gotune-wear"
# The check's service beside its timer.
WEAR_SERVICE = WEAR_TIMER.removesuffix(".timer") + ".service"
# smartctl's package under each package tool (the same name everywhere).
SMARTMONTOOLS = dict.fromkeys(state.PACKAGE_TOOLS, "smartmontools")

# Spread a fleet's checks so they do not all hit a shared node_exporter scrape at once.
RANDOM_DELAY = "10min"


def check_command(python: str, settings: Settings) -> str:
    """The periodic check's command line, every argument quoted."""
    th = Thresholds(
        warn_percent=settings.wear_warn_percent,
        critical_percent=settings.wear_critical_percent,
        media_errors_critical=settings.wear_media_errors_critical,
    )
    argv = [
        python, AGENT_PATH, "wear", "--record",
        "--state-dir", WEAR_STATE_DIR,
        "--warn-percent", str(th.warn_percent),
        "--critical-percent", str(th.critical_percent),
        "--media-errors-critical", str(th.media_errors_critical),
        "--write-budget", str(settings.gib(settings.mirror_write_budget_gib)),
    ]  # fmt: skip
    textfile = settings.wear_textfile_dir
    if textfile:
        argv += ["--textfile-dir", textfile]
    return " ".join(shlex.quote(a) for a in argv)


def cron_minute(host_name: str) -> int:
    """A fixed minute per host (a fleet's checks spread over the hour)."""
    return zlib.crc32(host_name.encode()) % 60


def smartctl_present() -> bool:
    if host.get_fact(Which, command="smartctl"):
        return True
    # cron's and sudo's PATH may lack /usr/sbin, where smartmontools installs smartctl.
    return any(
        host.get_fact(File, path=p) or host.get_fact(Link, path=p)
        for p in ("/usr/sbin/smartctl", "/sbin/smartctl")
    )


@deploy("gotune SSD wear check")
def deploy_wear(hp: HostPlan) -> None:
    """Install the agent, smartmontools (optional) and the hourly wear check."""
    check, settings = hp.plan.wear, hp.settings
    if check is None or check.value is None:
        host.noop(check.reason if check else "no wear check planned")
        return
    state.record_created(name=f"Record {AGENT_DIR} for undo", path=AGENT_DIR)
    install_agent()
    if settings.wear_install_smartmontools:
        state.package(name="Install smartmontools (smartctl)", names=SMARTMONTOOLS,
                      present=smartctl_present(),
                      distro=hp.facts.platform.distro_ids())  # fmt: skip
    # Only the state directory: /var/lib/gotune also holds the undo records themselves.
    state.record_created(
        name=f"Record {WEAR_STATE_DIR} for undo", path=WEAR_STATE_DIR, ancestors=False
    )
    files.directory(name=f"Create {WEAR_STATE_DIR}", path=WEAR_STATE_DIR, mode="755")
    textfile = settings.wear_textfile_dir
    if textfile:
        # node_exporter's directory, which other collectors share: undo removes it only empty.
        state.record_shared_dir(name=f"Record {textfile} for undo", path=textfile)
        files.directory(name=f"Create {textfile}", path=textfile, mode="755")
        prom = f"{textfile}/{METRICS_FILE}"
        state.record_file(name=f"Record {prom} for undo", path=prom)
    command = check_command(python3_path() or "/usr/bin/python3", settings)
    first_reading(
        name="First wear reading", command=command, state_file=WEAR_STATE
    )
    if check.runner == "systemd":
        service = state.file(
            name=f"Install {UNIT}.service", path=WEAR_SERVICE,
            content=render("wear-check.service.j2", command=command),
        )  # fmt: skip
        timer = state.file(
            name=f"Install {UNIT}.timer", path=WEAR_TIMER,
            content=render("wear-check.timer.j2", schedule=check.value,
                           random_delay=RANDOM_DELAY),
        )  # fmt: skip
        state.record_unit(name=f"Record {UNIT}.timer for undo", unit=f"{UNIT}.timer")
        systemd.service(
            name=f"Enable and start {UNIT}.timer", service=f"{UNIT}.timer", running=True,
            enabled=True, daemon_reload=service.changed or timer.changed,
        )  # fmt: skip
        files.file(
            name=f"Remove {WEAR_CRON} (systemd runs the check)", path=WEAR_CRON, present=False
        )
    else:
        state.file(
            name=f"Install {WEAR_CRON}", path=WEAR_CRON,
            content=render("wear-check.cron.j2", minute=cron_minute(host.name), command=command),
        )  # fmt: skip


# `pyinfra INVENTORY deploys/wear.py` executes this file (not as an import).
if __name__ != "gotune.deploys.wear":
    from gotune.deploys.host import current_host_plan

    deploy_wear(hp=current_host_plan(wear_enabled=True))
