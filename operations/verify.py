"""verify's part of apply: each developer user's setup recorded before anything changes.

``gotune verify`` compares the tuned host with the user's own setup before gotune (its
``before`` variant), so apply records that setup first, before any component touches
the host: ``baseline`` runs the agent's ``verify-runner`` in ``baseline`` mode as root
(``gotune.agent.verify.baseline``), which writes ``/var/lib/gotune/verify/baseline.json``.
A user recorded once is never recorded again (a second apply would record the tuned
setup); a user added to ``gotune_users`` later is recorded at the next apply. The file
and the directory it creates are recorded for undo first.

A capture that fails (a user without a login shell) is written into the record with
its error and never stops apply: verify then reports ``before`` as not measurable.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.facts.files import Directory

from gotune.agent.launch import agent_sh
from gotune.agent.paths import VERIFY_BASELINE, VERIFY_DIR
from gotune.facts.state import RecordedBaseline
from gotune.operations.state import record_created_cmd, record_path_cmd


@operation()
def baseline(users: list[str], path: str = VERIFY_BASELINE) -> Generator[Any, None, None]:
    """
    Record the developer users' Go setup as it is now, before apply changes anything.

    + users: the developer users (those recorded already are kept as they were)
    + path: the baseline file

    The agent (``/opt/gotune/gotune.pyz``) must be installed by an earlier operation.

    **Example:**

    .. code:: python

        verify.baseline(users=["alice"])
    """
    recorded = host.get_fact(RecordedBaseline, path=path)
    missing = [u for u in users if u not in recorded]
    if not missing:
        host.noop(f"{path} records {', '.join(users) or 'nobody'} already: kept as it was")
        return
    directory = path.rsplit("/", 1)[0]
    if directory == VERIFY_DIR and host.get_fact(Directory, path=directory) is None:
        yield record_created_cmd(directory)
    yield record_path_cmd(path)
    request = {"mode": "baseline", "users": list(users), "path": path}
    yield StringCommand(agent_sh(["verify-runner", json.dumps(request, sort_keys=True)]))
