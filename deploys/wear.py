"""The SSD wear check on a host: the agent, smartmontools and a periodic run.

Where systemd runs (``/run/systemd/system`` exists) a ``gotune-wear.timer``
starts ``gotune-wear.service`` hourly; elsewhere (WSL2 without systemd, containers,
the sandbox hosts of the tests) ``/etc/cron.d/gotune-wear`` does. Each run is
``python3 /opt/gotune/gotune.pyz wear --record ...``: readings appended to
``/var/lib/gotune/wear/history.jsonl``, the state file the mirror reads, and
node_exporter metrics. Idempotent: a second run changes nothing.

    pyinfra INVENTORY deploys/wear.py
"""

from __future__ import annotations

import shlex
import zlib
from pathlib import Path

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import Directory, File, Link
from pyinfra.facts.server import Which
from pyinfra.operations import files, server, systemd

from deploys.agent import install_agent, python3_path
from gotune.agent import AGENT_PATH
from gotune.errors import GotuneError
from gotune.settings import Settings, validate_host_data
from gotune.wear.check import DEFAULT_STATE_DIR
from gotune.wear.status import Thresholds

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
        "--state-dir", str(DEFAULT_STATE_DIR),
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


@deploy("gotune SSD wear check")
def install_wear() -> None:
    """Install the agent, smartmontools (optional) and the hourly wear check."""
    settings = validate_host_data(host.data.dict(), host.name)
    install_agent()
    if settings["gotune_wear_install_smartmontools"] and not smartctl_present():
        server.packages(name="Install smartmontools (smartctl)", packages=["smartmontools"])
    files.directory(name=f"Create {DEFAULT_STATE_DIR}", path=str(DEFAULT_STATE_DIR), mode="755")
    textfile = settings["gotune_wear_textfile_dir"]
    if textfile:
        files.directory(name=f"Create {textfile}", path=textfile, mode="755")
    python = python3_path() or "/usr/bin/python3"
    command = check_command(python, settings)
    if host.get_fact(Directory, path="/run/systemd/system"):
        service = files.template(
            name=f"Install {UNIT}.service",
            src=str(TEMPLATES / "wear-check.service.j2"),
            dest=f"{SYSTEMD_DIR}/{UNIT}.service",
            mode="644",
            command=command,
        )
        timer = files.template(
            name=f"Install {UNIT}.timer",
            src=str(TEMPLATES / "wear-check.timer.j2"),
            dest=f"{SYSTEMD_DIR}/{UNIT}.timer",
            mode="644",
            schedule=SCHEDULE,
            random_delay=RANDOM_DELAY,
        )
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
        files.template(
            name=f"Install {CRON_FILE}",
            src=str(TEMPLATES / "wear-cron.j2"),
            dest=CRON_FILE,
            mode="644",
            minute=cron_minute(host.name),
            command=command,
        )


# `pyinfra INVENTORY deploys/wear.py` executes this file (not as an import).
if __name__ != "deploys.wear":
    install_wear()
