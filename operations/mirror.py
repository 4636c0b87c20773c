"""Running the module mirror where systemd does not: a supervisor script kept alive.

Paired with ``facts/mirror.py`` (the supervisor's pid) and ``deploys/mirror.py``; the
build cache (``deploys/buildcache.py``), which runs beside the mirror, is kept the same way.
"""

from __future__ import annotations

import shlex
from collections.abc import Generator
from typing import Any

from pyinfra import host
from pyinfra.api import StringCommand, operation

from gotune.agent.paths import MIRROR_LOG, MIRROR_PIDFILE
from gotune.facts.mirror import MirrorSupervisor


@operation()
def supervised(
    script: str, restart: bool = False, pidfile: str = MIRROR_PIDFILE, log: str = MIRROR_LOG
) -> Generator[Any, None, None]:
    """
    Keep an agent service's supervisor script running (setsid, pid file), restarting on
    change: the mirror's, or the build cache's beside it.

    + script: the supervisor script
    + restart: stop a running supervisor first (its script or command changed)
    + pidfile: the pid file the script writes
    + log: where its output goes

    **Example:**

    .. code:: python

        mirror.supervised(script="/opt/gotune/gotune-mirror-supervise")
    """
    pid = host.get_fact(MirrorSupervisor, pidfile=pidfile)
    if pid and not restart:
        host.noop(f"the supervisor of {script} is running (pid {pid})")
        return
    if pid:
        yield StringCommand(
            f"kill {pid}; i=0; while test -d /proc/{pid} && test $i -lt 100; "
            "do sleep 0.1; i=$((i+1)); done"
        )
    yield StringCommand(f"setsid -f /bin/sh {shlex.quote(script)} >>{log} 2>&1 </dev/null")
