"""The mirror component: the local Go module mirror as a service.

Save → apply → verify → undo, side by side:

- plan: ``gotune/plan/mirror.py`` (the cache beside the developers' GOMODCACHE, the
  NUMA node of the NIC it serves, the developers' GOPROXY)
- apply: here — the agent (``/opt/gotune/gotune.pyz``) runs ``gotune mirror serve`` as
  the ``gotune-mirror`` system user: where systemd runs, ``gotune-mirror.service``
  (``templates/mirror-unit.service.j2``: ``Restart=on-failure`` and sandboxing, a
  read-only system that writes only its cache, no capabilities); elsewhere (WSL2
  without systemd, containers) a supervisor script started with ``setsid``
  (``templates/agent-supervise.sh.j2``) that restarts it after a failure and drops
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
from pyinfra.operations import files

from gotune.agent.paths import (
    AGENT_PATH,
    MIRROR_CRON,
    MIRROR_LOG,
    MIRROR_NUMA_PYTHON,
    MIRROR_PIDFILE,
    MIRROR_SUPERVISOR,
    MIRROR_UNIT_FILE,
    WEAR_STATE,
)
from gotune.deploys.agent import AgentService, python3_path, run_service, service_cache
from gotune.operations import state
from gotune.operations.numa import wrapper_script
from gotune.plan.model import HostPlan, MirrorPlan
from gotune.settings import Settings

q = shlex.quote

MIRROR_USER = "gotune-mirror"
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
    service_cache(MIRROR_USER, cache_dir, "Mirror cache", "755")
    command = " ".join(q(a) for a in serve_argv(_python(mirror), settings, cache_dir))
    run_service(AgentService(
        name="gotune-mirror", what="the Go module mirror", user=MIRROR_USER, command=command,
        unit_file=MIRROR_UNIT_FILE, unit_template="mirror-unit.service.j2",
        unit_values={"listen": settings.mirror_listen, "port": settings.mirror_port,
                     "cache_dir": cache_dir},
        supervisor=MIRROR_SUPERVISOR, pidfile=MIRROR_PIDFILE, log=MIRROR_LOG, cron=MIRROR_CRON,
    ), cron=hp.facts.platform.cron)  # fmt: skip


# `pyinfra INVENTORY deploys/mirror.py` executes this file (not as an import).
if __name__ != "gotune.deploys.mirror":
    from gotune.deploys.host import current_host_plan

    deploy_mirror(hp=current_host_plan())
