"""The SSD wear check on a host: the agent, smartmontools and a periodic run.

Where systemd runs (``/run/systemd/system`` exists) a ``gotune-wear.timer``
starts ``gotune-wear.service`` hourly; elsewhere (WSL2 without systemd, containers,
the sandbox hosts of the tests) ``/etc/cron.d/gotune-wear`` does. Each run is
``python3 /opt/gotune/gotune.pyz wear --record ...``: readings appended to
``/var/lib/gotune/wear/history.jsonl``, the state file the mirror reads, and
node_exporter metrics. Idempotent: a second run changes nothing. Units, the
cron file, the agent and the state directory are recorded, so ``gotune undo``
removes the check (and the metrics file it wrote).

    pyinfra INVENTORY deploys/wear.py
"""

from __future__ import annotations

import shlex
import zlib
from collections.abc import Generator
from pathlib import Path
from typing import Any

from pyinfra import host
from pyinfra.api import StringCommand, deploy, operation
from pyinfra.facts.files import Directory, File, Link
from pyinfra.facts.server import Which
from pyinfra.operations import files, server, systemd

from gotune.agent.paths import AGENT_DIR, AGENT_PATH, WEAR_STATE, WEAR_STATE_DIR
from gotune.agent.wear.metrics import METRICS_FILE
from gotune.agent.wear.status import Thresholds
from gotune.deploys.agent import install_agent, python3_path
from gotune.deploys.mirror import record_created, record_unit
from gotune.errors import GotuneError
from gotune.operations import state
from gotune.operations.render import render
from gotune.settings import Settings, validate_host_data

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
UNIT = "gotune-wear"
SYSTEMD_DIR = "/etc/systemd/system"
CRON_FILE = "/etc/cron.d/gotune-wear"

# Hourly: percentage used moves in weeks, but hourly write counters show a day's
# pattern, and one smartctl call per drive an hour costs nothing.
SCHEDULE = "hourly"
# Spread a fleet's checks so they do not all hit a shared node_exporter scrape at once.
RANDOM_DELAY = "10min"
GIB = 1 << 30


def check_command(python: str, settings: Settings) -> str:
    """The periodic check's command line, every argument quoted."""
    th = Thresholds(
        warn_percent=settings["gotune_wear_warn_percent"],
        critical_percent=settings["gotune_wear_critical_percent"],
        media_errors_critical=settings["gotune_wear_media_errors_critical"],
    )
    try:
        th.check()
    except ValueError as exc:
        raise GotuneError(f"host {settings.host_name}: wear settings: {exc}") from None
    argv = [
        python, AGENT_PATH, "wear", "--record",
        "--state-dir", WEAR_STATE_DIR,
        "--warn-percent", str(th.warn_percent),
        "--critical-percent", str(th.critical_percent),
        "--media-errors-critical", str(th.media_errors_critical),
        "--write-budget", str(int(float(settings["gotune_mirror_write_budget_gib"]) * GIB)),
    ]  # fmt: skip
    textfile = settings["gotune_wear_textfile_dir"]
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


@operation()
def record_file(path: str) -> Generator[Any, None, None]:
    """
    Record a file the periodic check will write, so ``gotune undo`` puts back what was there.

    + path: the file (its absence is recorded when it does not exist yet)
    """
    rec = f"{state.UNDO_DIR}/files/{state.hexname(path)}"
    if host.get_fact(File, path=rec) or host.get_fact(File, path=f"{rec}.absent"):
        host.noop(f"{path} already recorded for undo")
        return
    if host.get_fact(File, path=path):
        host.noop(f"{path} exists and was not recorded before: undo leaves it")
        return
    yield state.record_path_cmd(path)


@operation()
def first_reading(command: str, state_file: str) -> Generator[Any, None, None]:
    """
    Run the check once when it has never run, so the mirror and ``gotune verify`` have a state.

    + command: the periodic check's command line (quoted)
    + state_file: the state file the check writes
    """
    if host.get_fact(File, path=state_file):
        host.noop(f"{state_file} exists: the check has run")
        return
    yield StringCommand(f"{command} >/dev/null")


@deploy("gotune SSD wear check")
def install_wear() -> None:
    """Install the agent, smartmontools (optional) and the hourly wear check."""
    settings = validate_host_data(host.data.dict(), host.name)
    record_created(name=f"Record {AGENT_DIR} for undo", path=AGENT_DIR)
    install_agent()
    if settings["gotune_wear_install_smartmontools"] and not smartctl_present():
        server.packages(name="Install smartmontools (smartctl)", packages=["smartmontools"])
    # Only the state directory: /var/lib/gotune also holds the undo records themselves.
    record_created(
        name=f"Record {WEAR_STATE_DIR} for undo", path=WEAR_STATE_DIR, ancestors=False
    )
    files.directory(name=f"Create {WEAR_STATE_DIR}", path=WEAR_STATE_DIR, mode="755")
    textfile = settings["gotune_wear_textfile_dir"]
    if textfile:
        files.directory(name=f"Create {textfile}", path=textfile, mode="755")
        prom = f"{textfile}/{METRICS_FILE}"
        record_file(name=f"Record {prom} for undo", path=prom)
    python = python3_path() or "/usr/bin/python3"
    command = check_command(python, settings)
    first_reading(
        name="First wear reading",
        command=command,
        state_file=WEAR_STATE,
    )
    if host.get_fact(Directory, path="/run/systemd/system"):
        service = state.file(
            name=f"Install {UNIT}.service",
            path=f"{SYSTEMD_DIR}/{UNIT}.service",
            content=render("wear-check.service.j2", command=command),
        )
        timer = state.file(
            name=f"Install {UNIT}.timer",
            path=f"{SYSTEMD_DIR}/{UNIT}.timer",
            content=render("wear-check.timer.j2", schedule=SCHEDULE, random_delay=RANDOM_DELAY),
        )
        record_unit(name=f"Record {UNIT}.timer for undo", unit=f"{UNIT}.timer")
        systemd.service(
            name=f"Enable and start {UNIT}.timer",
            service=f"{UNIT}.timer",
            running=True,
            enabled=True,
            daemon_reload=service.changed or timer.changed,
        )
        files.file(
            name=f"Remove {CRON_FILE} (systemd runs the check)", path=CRON_FILE, present=False
        )
    else:
        state.file(
            name=f"Install {CRON_FILE}",
            path=CRON_FILE,
            content=render("wear-cron.j2", minute=cron_minute(host.name), command=command),
        )


# `pyinfra INVENTORY deploys/wear.py` executes this file (not as an import).
if __name__ != "gotune.deploys.wear":
    install_wear()
