"""Install the gotune agent on a host: ``/opt/gotune/gotune.pyz``, run by the host's python3.

``run_service`` runs an agent service (the mirror, the build cache) as a systemd unit,
or where systemd does not run, as a supervised process started at boot by cron;
``service_cache`` makes the system user it runs as and its cache directory.

The wear check, the mirror and NUMA measuring run on targets from
``gotune.agent``, which uses only Python's standard library, so the deploy ships
it as one zipapp built on the control machine (``gotune/zipapp.py``) instead of
installing anything with pip.
The zipapp's bytes are reproducible, so a second run uploads nothing.

    pyinfra INVENTORY deploys/agent.py
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from pyinfra import host
from pyinfra.api import FactBase, deploy
from pyinfra.facts.files import Directory
from pyinfra.operations import files, server, systemd

from gotune.agent.launch import find_python3_sh
from gotune.agent.paths import AGENT_DIR, AGENT_PATH
from gotune.operations import state
from gotune.operations.mirror import supervised
from gotune.operations.render import render
from gotune.zipapp import agent_bytes


class Python3(FactBase[str]):
    """
    The python3 the agent runs with: the distribution's first, else PATH's; None if none.

    .. code:: python

        "/usr/bin/python3"
    """

    def command(self) -> str:
        return f'{find_python3_sh()}; echo "$py"'

    def process(self, output: list[str]) -> str | None:  # type: ignore[override]
        return "".join(output).strip() or None


def python3_path() -> str | None:
    """Where the host's python3 is (the agent's interpreter), or None."""
    found: str | None = host.get_fact(Python3)
    return found


@dataclass(frozen=True)
class AgentService:
    """How an agent service (the mirror, the build cache) runs on a host.

    + name: its name: the unit is ``<name>.service``, logs and messages say it
    + what: what it is, in words (comments, operation names)
    + user: the system user it runs as
    + command: its command line (quoted for a shell and a unit file)
    + unit_file, unit_template, unit_values: the systemd unit and what the template needs
    + supervisor, pidfile, log, cron: the supervisor script, its pid file, its log and the
      cron file that starts it at boot, where systemd does not run
    """

    name: str
    what: str
    user: str
    command: str
    unit_file: str
    unit_template: str
    unit_values: dict[str, Any]
    supervisor: str
    pidfile: str
    log: str
    cron: str


def service_cache(user: str, cache_dir: str, what: str, mode: str) -> None:
    """The agent, the system user an agent service runs as and its cache directory, each
    recorded for undo first (the mirror's and the build cache's)."""
    state.record_created(name=f"Record {AGENT_DIR} for undo", path=AGENT_DIR)
    install_agent()
    state.record_user(name=f"Record user {user} for undo", user=user)
    server.user(  # noqa: S604 - shell= is the account's login shell, not a subprocess flag
        name=f"System user {user}", user=user, system=True, shell="/usr/sbin/nologin",
        home="/nonexistent", create_home=False,
    )  # fmt: skip
    state.record_created(name=f"Record {cache_dir} for undo", path=cache_dir)
    files.directory(name=f"{what} {cache_dir}", path=cache_dir, user=user, group=user,
                    mode=mode)


def run_service(service: AgentService, cron: bool) -> None:
    """Run ``service``: its unit where systemd runs (restarted when it changed), else its
    supervisor script (started at boot by cron when ``cron``); everything recorded for undo.
    """
    common = {"user": service.user, "command": service.command, "what": service.what}
    unit = f"{service.name}.service"
    if host.get_fact(Directory, path="/run/systemd/system"):
        changed = state.file(
            name=f"Install {unit}", path=service.unit_file,
            content=render(service.unit_template, **service.unit_values, **common),
        )  # fmt: skip
        state.record_unit(name=f"Record {unit} for undo", unit=unit)
        systemd.service(
            name=f"Enable and start {unit}", service=unit, running=True, enabled=True,
            restarted=changed.changed, daemon_reload=changed.changed,
        )  # fmt: skip
        return
    script = state.file(
        name=f"Install the supervisor of {service.what}", path=service.supervisor,
        content=render("agent-supervise.sh.j2", script=service.supervisor,
                       pidfile=service.pidfile, service=service.name, **common),
        mode=0o755,
    )  # fmt: skip
    if cron:
        state.file(
            name=f"Start {service.what} at boot ({service.cron})", path=service.cron,
            content=render("agent-boot.cron.j2", script=service.supervisor, log=service.log,
                           what=service.what),
        )  # fmt: skip
    supervised(
        name=f"Run {service.what} (supervised)", script=service.supervisor,
        restart=script.changed, pidfile=service.pidfile, log=service.log,
    )  # fmt: skip


@deploy("Install the gotune agent")
def install_agent() -> None:
    """Upload the gotune zipapp to ``/opt/gotune/gotune.pyz`` (python3 installed if absent)."""
    if python3_path() is None:
        server.packages(
            name="Install python3 (runs the gotune agent)",
            packages=["python3"],
        )
    files.directory(name=f"Create {AGENT_DIR}", path=AGENT_DIR, mode="755")
    files.put(
        name=f"Upload the gotune agent to {AGENT_PATH}",
        src=io.BytesIO(agent_bytes()),
        dest=AGENT_PATH,
        mode="755",
    )


# `pyinfra INVENTORY deploys/agent.py` executes this file (not as an import).
if __name__ != "gotune.deploys.agent":
    install_agent()
