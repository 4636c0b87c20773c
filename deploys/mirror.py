"""The mirror component: the local Go module mirror as a service.

Save → apply → verify → undo, side by side:

- plan: ``gotune/plan/mirror.py`` (the cache beside the developers' GOMODCACHE, the
  NUMA node of the NIC it serves, the developers' GOPROXY)
- apply: here — the agent (``/opt/gotune/gotune.pyz``) runs ``gotune mirror serve`` as
  the ``gotune-mirror`` system user: where systemd runs, ``gotune-mirror.service``
  (``templates/mirror-unit.service.j2``: ``Restart=on-failure`` and sandboxing, a
  read-only system that writes only its cache, no capabilities); elsewhere (WSL2
  without systemd, containers) a supervisor script started with ``setsid``
  (``templates/mirror-supervise.sh.j2``) that restarts it after a failure and drops
  privileges with ``setpriv``, started at boot by cron. On a multi-node machine
  serving a LAN its python3 runs through a numactl wrapper that falls back to
  running unbound.
- verify: ``gotune/verify/checks/mirror.py`` (/healthz answers, a cached module is served)
- undo: every file, directory and unit is recorded first; deleting the supervisor
  script stops the supervised mirror

Loopback by default; a non-loopback ``gotune_mirror_listen`` needs
``gotune_mirror_allow`` (refused when settings are validated). Idempotent: a
second run changes nothing. Alone: ``pyinfra INVENTORY deploys/mirror.py``.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import Directory
from pyinfra.operations import files, server, systemd

from gotune.agent.paths import (
    AGENT_DIR,
    AGENT_PATH,
    MIRROR_CRON,
    MIRROR_LOG,
    MIRROR_NUMA_PYTHON,
    MIRROR_PIDFILE,
    MIRROR_SUPERVISOR,
    MIRROR_UNIT_FILE,
    WEAR_STATE,
)
from gotune.deploys.agent import install_agent, python3_path
from gotune.operations import state
from gotune.operations.mirror import supervised
from gotune.operations.numa import wrapper_script
from gotune.operations.render import render
from gotune.plan.model import HostPlan, MirrorPlan
from gotune.settings import Settings

q = shlex.quote

MIRROR_USER = "gotune-mirror"
UNIT = "gotune-mirror.service"
# The directory of the NUMA wrapper that runs the agent's python3 on the NIC-local node.
NUMA_BIN_DIR = MIRROR_NUMA_PYTHON.rsplit("/", 1)[0]
GIB = 1 << 30


def serve_argv(python: str, settings: Settings, cache_dir: str) -> list[str]:
    """The service's command line.

    + python: the interpreter (or the NUMA wrapper standing in for it)
    + cache_dir: the plan's cache directory
    """
    argv = [
        python, AGENT_PATH, "mirror", "serve",
        "--listen", f"{settings.mirror_listen}:{settings.mirror_port}",
        "--cache-dir", cache_dir,
        "--upstream", settings.mirror_upstream,
        "--max-cache-size", str(int(float(settings.mirror_max_cache_gib) * GIB)),
        "--wear-state", WEAR_STATE,
    ]  # fmt: skip
    if settings.mirror_allow:
        argv += ["--allow", ",".join(settings.mirror_allow)]
    if settings.mirror_limit_rate:
        argv += ["--limit-rate", settings.mirror_limit_rate]
    if settings.mirror_limit_requests:
        argv += ["--limit-requests", str(settings.mirror_limit_requests)]
    return argv


def _python(mirror: MirrorPlan) -> str:
    """The interpreter the service runs: python3, or its NUMA wrapper on a bound host."""
    python = python3_path() or "/usr/bin/python3"
    binding = mirror.binding
    if not binding.numactl_args:
        files.file(name="No NUMA wrapper for the mirror", path=MIRROR_NUMA_PYTHON, present=False)
        return python
    # Falls back to the plain python3 when numactl is missing or the binding fails.
    state.file(
        name=f"NUMA wrapper for the mirror (numactl {binding.value})",
        path=MIRROR_NUMA_PYTHON,
        content=wrapper_script(
            "python3", binding.numactl_args, binding.nodes, binding.reason,
            recorded=python, bin_dir=NUMA_BIN_DIR,
        ),
        mode=0o755,
    )
    return MIRROR_NUMA_PYTHON


@deploy("gotune module mirror")
def deploy_mirror(hp: HostPlan) -> None:
    """Install the agent and run the mirror as a service (nothing when it is not planned)."""
    mirror, settings = hp.plan.mirror, hp.settings
    if mirror is None:
        host.noop("gotune_mirror_enabled is false: no mirror on this host")
        return
    cache_dir = str(mirror.cache.value)
    state.record_created(name=f"Record {AGENT_DIR} for undo", path=AGENT_DIR)
    install_agent()
    server.user(  # noqa: S604 - shell= is the account's login shell, not a subprocess flag
        name=f"System user {MIRROR_USER}", user=MIRROR_USER, system=True,
        shell="/usr/sbin/nologin", home="/nonexistent", create_home=False,
    )  # fmt: skip
    state.record_created(name=f"Record {cache_dir} for undo", path=cache_dir)
    files.directory(
        name=f"Mirror cache {cache_dir}", path=cache_dir, user=MIRROR_USER, group=MIRROR_USER,
        mode="755",
    )  # fmt: skip
    command = " ".join(q(a) for a in serve_argv(_python(mirror), settings, cache_dir))
    common = {"user": MIRROR_USER, "command": command}
    if host.get_fact(Directory, path="/run/systemd/system"):
        unit = state.file(
            name=f"Install {UNIT}", path=MIRROR_UNIT_FILE,
            content=render("mirror-unit.service.j2", listen=settings.mirror_listen,
                           port=settings.mirror_port, cache_dir=cache_dir, **common),
        )  # fmt: skip
        state.record_unit(name=f"Record {UNIT} for undo", unit=UNIT)
        systemd.service(
            name=f"Enable and start {UNIT}", service=UNIT, running=True, enabled=True,
            restarted=unit.changed, daemon_reload=unit.changed,
        )  # fmt: skip
        return
    script = state.file(
        name="Install the mirror supervisor", path=MIRROR_SUPERVISOR,
        content=render(
            "mirror-supervise.sh.j2", script=MIRROR_SUPERVISOR, pidfile=MIRROR_PIDFILE, **common
        ),
        mode=0o755,
    )  # fmt: skip
    if hp.facts.platform.cron:
        state.file(
            name=f"Start the mirror at boot ({MIRROR_CRON})", path=MIRROR_CRON,
            content=render("mirror-boot.cron.j2", script=MIRROR_SUPERVISOR, log=MIRROR_LOG),
        )  # fmt: skip
    supervised(
        name="Run the mirror (supervised)", script=MIRROR_SUPERVISOR, restart=script.changed
    )


# `pyinfra INVENTORY deploys/mirror.py` executes this file (not as an import).
if __name__ != "gotune.deploys.mirror":
    from gotune.deploys.host import current_host_plan

    deploy_mirror(hp=current_host_plan())
