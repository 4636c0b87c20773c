"""Install the gotune agent on a host: ``/opt/gotune/gotune.pyz``, run by the host's python3.

The wear check, the mirror and NUMA measuring run on targets from
``gotune.agent``, which uses only Python's standard library, so the deploy ships
it as one zipapp built on the control machine (``gotune/zipapp.py``) instead of
installing anything with pip.
The zipapp's bytes are reproducible, so a second run uploads nothing.

    pyinfra INVENTORY deploys/agent.py
"""

from __future__ import annotations

import io

from pyinfra import host
from pyinfra.api import FactBase, deploy
from pyinfra.operations import files, server

from gotune.agent.launch import find_python3_sh
from gotune.agent.paths import AGENT_DIR, AGENT_PATH
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
