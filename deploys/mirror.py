"""The local Go module mirror on a host, as a service, when ``gotune_mirror_enabled``.

The agent (``/opt/gotune/gotune.pyz``) runs ``gotune mirror serve`` as the
``gotune-mirror`` system user:

- where systemd runs: ``gotune-mirror.service`` with ``Restart=on-failure`` and
  sandboxing (read-only system, writes only to the cache, no capabilities);
- elsewhere (WSL2 without systemd, containers, the test sandbox hosts): a small
  supervisor script started with ``setsid`` (pid file ``/run/gotune-mirror.pid``)
  that restarts the mirror after a failure and drops privileges with ``setpriv``;
  cron starts it at boot. Deleting the script (``gotune undo``) stops it.

Loopback by default; a non-loopback ``gotune_mirror_listen`` needs
``gotune_mirror_allow`` (the mirror answers 403 to other clients). Every file and
unit is recorded for ``gotune undo``. The developer's GOPROXY for this mirror is
``developer_goproxy(settings)``: ``http://127.0.0.1:PORT|<upstream>,direct``, so
a stopped mirror never stops a build. Idempotent: a second run changes nothing.

    pyinfra INVENTORY deploys/mirror.py
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Generator
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, deploy, operation
from pyinfra.facts.files import Directory, File
from pyinfra.facts.server import Which
from pyinfra.operations import files, server, systemd

from deploys.agent import AGENT_DIR, install_agent, python3_path
from gotune.agent import AGENT_PATH
from gotune.errors import GotuneError
from gotune.settings import Settings, validate_host_data
from gotune.wear.state import DEFAULT_WEAR_STATE
from operations import state
from operations.render import render

q = shlex.quote

MIRROR_USER = "gotune-mirror"
UNIT = "gotune-mirror"
UNIT_FILE = f"/etc/systemd/system/{UNIT}.service"
SUPERVISOR = f"{AGENT_DIR}/gotune-mirror-supervise"
PIDFILE = "/run/gotune-mirror.pid"
LOGFILE = "/var/log/gotune-mirror.log"
CRON_FILE = "/etc/cron.d/gotune-mirror"
GIB = 1 << 30


class MirrorSupervisor(FactBase[int]):
    """
    The pid of the running mirror supervisor (non-systemd hosts), or None.

    .. code:: python

        4242
    """

    def command(self) -> str:
        return (
            f"! test -f {PIDFILE} || {{ pid=$(cat {PIDFILE}); "
            'case "$pid" in *[!0-9]*|"") ;; *) ! test -d "/proc/$pid" || echo "$pid" ;; esac; }'
        )

    def process(self, output: list[str]) -> int | None:  # type: ignore[override]
        text = "".join(output).strip()
        return int(text) if text.isdigit() else None


def check_exposure(settings: Settings) -> None:
    """A mirror on a non-loopback address must have an allowlist."""
    addr = ipaddress.ip_address(settings["gotune_mirror_listen"])
    if not addr.is_loopback and not settings["gotune_mirror_allow"]:
        raise GotuneError(
            f"host {settings.host_name}: gotune_mirror_listen {addr} is not loopback; "
            "set gotune_mirror_allow to the client networks (CIDR) that may use it"
        )


def serve_argv(python: str, settings: Settings) -> list[str]:
    """The service's command line."""
    argv = [
        python, AGENT_PATH, "mirror", "serve",
        "--listen", f"{settings['gotune_mirror_listen']}:{settings['gotune_mirror_port']}",
        "--cache-dir", settings["gotune_mirror_cache_dir"],
        "--upstream", settings["gotune_mirror_upstream"],
        "--max-cache-size", str(int(float(settings["gotune_mirror_max_cache_gib"]) * GIB)),
        "--wear-state", str(DEFAULT_WEAR_STATE),
    ]  # fmt: skip
    if settings["gotune_mirror_allow"]:
        argv += ["--allow", ",".join(settings["gotune_mirror_allow"])]
    if settings["gotune_mirror_limit_rate"]:
        argv += ["--limit-rate", settings["gotune_mirror_limit_rate"]]
    if settings["gotune_mirror_limit_requests"]:
        argv += ["--limit-requests", str(settings["gotune_mirror_limit_requests"])]
    return argv


def developer_goproxy(settings: Settings) -> str:
    """GOPROXY for developers on the host: the mirror first, upstream on any error."""
    listen = ipaddress.ip_address(settings["gotune_mirror_listen"])
    local = "127.0.0.1" if listen.is_unspecified or listen.is_loopback else str(listen)
    if listen.version == 6 and not listen.is_unspecified and not listen.is_loopback:
        local = f"[{listen}]"
    upstream = settings["gotune_mirror_upstream"]
    tail = "" if upstream.endswith((",direct", "|direct", ",off", "|off")) else ",direct"
    return f"http://{local}:{settings['gotune_mirror_port']}|{upstream}{tail}"


@operation()
def record_unit(unit: str) -> Generator[Any, None, None]:
    """
    Record a systemd unit gotune enabled, so ``gotune undo`` disables it.

    + unit: the unit name, e.g. ``gotune-mirror.service``
    """
    if host.get_fact(File, path=f"{state.UNDO_DIR}/units/{unit}"):
        host.noop(f"{unit} already recorded for undo")
        return
    yield state.record_cmd("units", unit, unit)


@operation()
def record_created(path: str) -> Generator[Any, None, None]:
    """
    Record a directory gotune is about to create, so ``gotune undo`` removes it.

    + path: the directory (recorded only if it does not exist yet)
    """
    if host.get_fact(Directory, path=path) is not None:
        host.noop(f"{path} exists (recorded when gotune created it, if it did)")
        return
    yield state.record_created_cmd(path)


@operation()
def supervised(script: str, restart: bool = False) -> Generator[Any, None, None]:
    """
    Keep the mirror's supervisor script running (setsid, pid file), restarting on change.

    + script: the supervisor script
    + restart: stop a running supervisor first (its script or command changed)
    """
    pid = host.get_fact(MirrorSupervisor)
    if pid and not restart:
        host.noop(f"the mirror supervisor is running (pid {pid})")
        return
    if pid:
        yield StringCommand(
            f"kill {pid}; i=0; while test -d /proc/{pid} && test $i -lt 100; "
            "do sleep 0.1; i=$((i+1)); done"
        )
    yield StringCommand(f"setsid -f /bin/sh {q(script)} >>{LOGFILE} 2>&1 </dev/null")


@deploy("gotune module mirror")
def install_mirror() -> None:
    """Install the agent and run the mirror as a service (or remove nothing when disabled)."""
    settings = validate_host_data(host.data.dict(), host.name)
    if not settings["gotune_mirror_enabled"]:
        host.noop("gotune_mirror_enabled is false: no mirror on this host")
        return
    check_exposure(settings)
    install_agent()
    server.user(  # noqa: S604 - shell= is the account's login shell, not a subprocess flag
        name=f"System user {MIRROR_USER}",
        user=MIRROR_USER,
        system=True,
        shell="/usr/sbin/nologin",
        home="/nonexistent",
        create_home=False,
    )
    cache_dir = settings["gotune_mirror_cache_dir"]
    record_created(name=f"Record {cache_dir} for undo", path=cache_dir)
    files.directory(
        name=f"Mirror cache {cache_dir}",
        path=cache_dir,
        user=MIRROR_USER,
        group=MIRROR_USER,
        mode="755",
    )
    python = python3_path() or "/usr/bin/python3"
    command = " ".join(q(a) for a in serve_argv(python, settings))
    common = {"user": MIRROR_USER, "command": command}
    if host.get_fact(Directory, path="/run/systemd/system"):
        unit = state.file(
            name=f"Install {UNIT}.service",
            path=UNIT_FILE,
            content=render("mirror.service.j2", listen=settings["gotune_mirror_listen"],
                           port=settings["gotune_mirror_port"], cache_dir=cache_dir, **common),
        )
        record_unit(name=f"Record {UNIT}.service for undo", unit=f"{UNIT}.service")
        systemd.service(
            name=f"Enable and start {UNIT}.service",
            service=f"{UNIT}.service",
            running=True,
            enabled=True,
            restarted=unit.changed,
            daemon_reload=unit.changed,
        )
        return
    script = state.file(
        name="Install the mirror supervisor",
        path=SUPERVISOR,
        content=render("mirror-supervise.sh.j2", script=SUPERVISOR, pidfile=PIDFILE, **common),
        mode=0o755,
    )
    if host.get_fact(Which, command="cron") or host.get_fact(Which, command="crond"):
        state.file(
            name=f"Start the mirror at boot ({CRON_FILE})",
            path=CRON_FILE,
            content=render("mirror-cron.j2", script=SUPERVISOR, log=LOGFILE),
        )
    supervised(name="Run the mirror (supervised)", script=SUPERVISOR, restart=script.changed)


# `pyinfra INVENTORY deploys/mirror.py` executes this file (not as an import).
if __name__ != "deploys.mirror":
    install_mirror()
