"""Running the module mirror where systemd does not: a supervisor script kept alive.

Paired with ``facts/mirror.py`` (the supervisor's pid) and ``deploys/mirror.py``.
"""

from __future__ import annotations

import shlex
from collections.abc import Generator
from typing import Any

from pyinfra import host
from pyinfra.api import StringCommand, operation

from gotune.agent.paths import MIRROR_LOG
from gotune.facts.mirror import MirrorSupervisor


@operation()
def supervised(script: str, restart: bool = False) -> Generator[Any, None, None]:
    """
    Keep the mirror's supervisor script running (setsid, pid file), restarting on change.

    + script: the supervisor script
    + restart: stop a running supervisor first (its script or command changed)

    **Example:**

    .. code:: python

        mirror.supervised(script="/opt/gotune/gotune-mirror-supervise")
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
    yield StringCommand(f"setsid -f /bin/sh {shlex.quote(script)} >>{MIRROR_LOG} 2>&1 </dev/null")
