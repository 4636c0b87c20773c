"""Install the gotune agent on a host: ``/opt/gotune/gotune.pyz``, run by the host's python3.

The wear check and the mirror run on targets; both use only Python's standard
library, so the deploy ships the ``gotune`` package as one zipapp built on the
control machine (``gotune/agent.py``) instead of installing anything with pip.
The zipapp's bytes are reproducible, so a second run uploads nothing.

    pyinfra INVENTORY deploys/agent.py
"""

from __future__ import annotations

import io

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File, Link
from pyinfra.facts.server import Which
from pyinfra.operations import files, server

from gotune.zipapp import AGENT_PATH, build_bytes

AGENT_DIR = "/opt/gotune"

_built: list[bytes] = []


def agent_bytes() -> bytes:
    """The zipapp, built once per control-machine run (every host gets the same bytes)."""
    if not _built:
        _built.append(build_bytes())
    return _built[0]


# The distribution's python3 first: a PATH lookup as root can find a pyenv shim or
# a venv that a cron job or a systemd unit cannot run.
SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")


def python3_path() -> str | None:
    """Where the host's python3 is (the agent's interpreter), or None."""
    for path in SYSTEM_PYTHONS:
        if host.get_fact(File, path=path) or host.get_fact(Link, path=path):
            return path
    found: str | None = host.get_fact(Which, command="python3")
    return found or None


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
