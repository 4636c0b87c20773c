"""How the control machine starts the agent on a host: which python3 runs which zipapp.

The one python3 lookup, as the shell snippet every caller sends: the deploys
(their ``Python3`` fact), NUMA measuring and verify. The distribution's python3
comes first (``SYSTEM_PYTHONS``), then whatever PATH offers. Standard library only.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from gotune.agent.paths import AGENT_PATH, SYSTEM_PYTHONS

# What a host without python3 answers (127: the shell's "command not found").
NO_PYTHON_EXIT = 127


def find_python3_sh() -> str:
    """Shell that sets ``$py`` to the host's python3, or to "" when it has none."""
    tries = " ".join(shlex.quote(p) for p in SYSTEM_PYTHONS)
    return (f'py=; for p in {tries}; do if [ -x "$p" ]; then py=$p; break; fi; done; '
            '[ -n "$py" ] || py=$(command -v python3 2>/dev/null) || py=')


def exec_agent_sh(argv: Sequence[str], agent: str = AGENT_PATH) -> str:
    """Shell that replaces itself with ``$py AGENT ARGV...`` (``$py`` set; words quoted)."""
    words = " ".join(shlex.quote(a) for a in (agent, *argv))
    return f'exec "$py" {words}'


def agent_sh(argv: Sequence[str], agent: str = AGENT_PATH) -> str:
    """Shell that runs ``python3 AGENT ARGV...``; exit 127 when the host has no python3."""
    return (f'{find_python3_sh()}; if [ -z "$py" ]; then '
            f'echo "gotune: python3 not found on this host" >&2; exit {NO_PYTHON_EXIT}; fi; '
            f"{exec_agent_sh(argv, agent)}")
