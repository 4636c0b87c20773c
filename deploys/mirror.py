"""The local Go module mirror on a host, as a service, when ``gotune_mirror_enabled``.

The agent (``/opt/gotune/gotune.pyz``) runs ``gotune mirror serve`` as the
``gotune-mirror`` system user:

- where systemd runs: ``gotune-mirror.service`` with ``Restart=on-failure`` and
  sandboxing (read-only system, writes only to the cache, no capabilities);
- elsewhere (WSL2 without systemd, containers, the test sandbox hosts): a small
  supervisor script started with ``setsid`` (pid file ``/run/gotune-mirror.pid``)
  that restarts the mirror after a failure and drops privileges with ``setpriv``;
  cron starts it at boot. Deleting the script (``gotune undo``) stops it.

From the laptop deploy (``deploys/tune.py``) the cache directory and the NUMA
binding come from the plan (``gotune/plan/mirror.py``): the cache beside the
developers' GOMODCACHE, and on a multi-node machine serving a LAN the mirror's
python3 runs through a numactl wrapper (``/opt/gotune/numa/python3``) that falls
back to running unbound. Run alone, the cache is ``gotune_mirror_cache_dir`` or
``/var/cache/gotune/mirror``.

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
from pyinfra.facts.files import Directory, File, FileContents
from pyinfra.facts.server import Which
from pyinfra.operations import files, server, systemd

from gotune.agent.paths import AGENT_DIR, AGENT_PATH, WEAR_STATE
from gotune.agent.paths import MIRROR_CRON as CRON_FILE
from gotune.agent.paths import MIRROR_LOG as LOGFILE
from gotune.agent.paths import MIRROR_NUMA_PYTHON as NUMA_WRAPPER
from gotune.agent.paths import MIRROR_PIDFILE as PIDFILE
from gotune.agent.paths import MIRROR_SUPERVISOR as SUPERVISOR
from gotune.agent.paths import MIRROR_UNIT_FILE as UNIT_FILE
from gotune.deploys.agent import install_agent, python3_path
from gotune.errors import GotuneError
from gotune.operations import state
from gotune.operations.numa import wrapper_script
from gotune.operations.render import render
from gotune.plan.mirror import DEFAULT_CACHE_DIR
from gotune.settings import Settings, validate_host_data

q = shlex.quote

MIRROR_USER = "gotune-mirror"
UNIT = "gotune-mirror"
# The directory of the NUMA wrapper that runs the agent's python3 on the NIC-local node.
NUMA_BIN_DIR = NUMA_WRAPPER.rsplit("/", 1)[0]
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


def installed_cache_dir() -> str | None:
    """The ``--cache-dir`` of the mirror gotune installed on the current host, or None."""
    for path in (UNIT_FILE, SUPERVISOR):
        for line in host.get_fact(FileContents, path=path) or []:
            if " mirror serve " not in line:
                continue
            try:
                argv = shlex.split(line.removeprefix("ExecStart="))
            except ValueError:
                return None
            if "--cache-dir" in argv[:-1]:
                return argv[argv.index("--cache-dir") + 1]
    return None


def check_exposure(settings: Settings) -> None:
    """A mirror on a non-loopback address must have an allowlist."""
    addr = ipaddress.ip_address(settings["gotune_mirror_listen"])
    if not addr.is_loopback and not settings["gotune_mirror_allow"]:
        raise GotuneError(
            f"host {settings.host_name}: gotune_mirror_listen {addr} is not loopback; "
            "set gotune_mirror_allow to the client networks (CIDR) that may use it"
        )


def serve_argv(python: str, settings: Settings, cache_dir: str | None = None) -> list[str]:
    """The service's command line.

    + python: the interpreter (or the NUMA wrapper standing in for it)
    + cache_dir: the plan's cache directory (default: the setting, else ``DEFAULT_CACHE_DIR``)
    """
    cache_dir = cache_dir or settings["gotune_mirror_cache_dir"] or DEFAULT_CACHE_DIR
    argv = [
        python, AGENT_PATH, "mirror", "serve",
        "--listen", f"{settings['gotune_mirror_listen']}:{settings['gotune_mirror_port']}",
        "--cache-dir", cache_dir,
        "--upstream", settings["gotune_mirror_upstream"],
        "--max-cache-size", str(int(float(settings["gotune_mirror_max_cache_gib"]) * GIB)),
        "--wear-state", WEAR_STATE,
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
def record_created(path: str, ancestors: bool = True) -> Generator[Any, None, None]:
    """
    Record a directory gotune is about to create, so ``gotune undo`` removes it.

    + path: the directory (recorded only if it does not exist yet)
    + ancestors: record its highest missing ancestor instead (``mkdir -p`` creates
      them all, and undo removes that one with everything below it)
    """
    if host.get_fact(Directory, path=path) is not None:
        host.noop(f"{path} exists (recorded when gotune created it, if it did)")
        return
    top = path
    while (
        ancestors
        and top.count("/") > 1
        and host.get_fact(Directory, path=top.rsplit("/", 1)[0]) is None
    ):
        top = top.rsplit("/", 1)[0]
    yield state.record_created_cmd(top)


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
def install_mirror(
    cache_dir: str | None = None,
    numactl_args: list[str] | None = None,
    nodes: list[int] | None = None,
    numa_reason: str = "",
) -> None:
    """Install the agent and run the mirror as a service (or remove nothing when disabled).

    + cache_dir: the plan's cache directory (default: the setting, else ``DEFAULT_CACHE_DIR``)
    + numactl_args: the plan's binding (``numa.mirror``); empty: the mirror runs unbound
    + nodes: the nodes ``numactl_args`` names (the wrapper checks they are online)
    + numa_reason: the plan's reason, kept as a comment in the wrapper
    """
    settings = validate_host_data(host.data.dict(), host.name)
    if not settings["gotune_mirror_enabled"]:
        host.noop("gotune_mirror_enabled is false: no mirror on this host")
        return
    check_exposure(settings)
    record_created(name=f"Record {AGENT_DIR} for undo", path=AGENT_DIR)
    install_agent()
    server.user(  # noqa: S604 - shell= is the account's login shell, not a subprocess flag
        name=f"System user {MIRROR_USER}",
        user=MIRROR_USER,
        system=True,
        shell="/usr/sbin/nologin",
        home="/nonexistent",
        create_home=False,
    )
    cache_dir = cache_dir or settings["gotune_mirror_cache_dir"] or DEFAULT_CACHE_DIR
    record_created(name=f"Record {cache_dir} for undo", path=cache_dir)
    files.directory(
        name=f"Mirror cache {cache_dir}",
        path=cache_dir,
        user=MIRROR_USER,
        group=MIRROR_USER,
        mode="755",
    )
    python = python3_path() or "/usr/bin/python3"
    if numactl_args:
        # Falls back to the plain python3 when numactl is missing or the binding fails.
        state.file(
            name=f"NUMA wrapper for the mirror (numactl {' '.join(numactl_args)})",
            path=NUMA_WRAPPER,
            content=wrapper_script(
                "python3",
                numactl_args,
                nodes or [],
                numa_reason,
                recorded=python,
                bin_dir=NUMA_BIN_DIR,
            ),
            mode=0o755,
        )
        python = NUMA_WRAPPER
    else:
        files.file(name="No NUMA wrapper for the mirror", path=NUMA_WRAPPER, present=False)
    command = " ".join(q(a) for a in serve_argv(python, settings, cache_dir))
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
if __name__ != "gotune.deploys.mirror":
    install_mirror()
