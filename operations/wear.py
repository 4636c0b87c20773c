"""The wear check's first reading, so the mirror and verify have a state at once.

Paired with ``deploys/wear.py`` (the schedule) and ``gotune.agent.wear`` (the check).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.facts.files import File


@operation()
def first_reading(command: str, state_file: str) -> Generator[Any, None, None]:
    """
    Run the check once when it has never run.

    + command: the periodic check's command line (quoted)
    + state_file: the state file the check writes

    **Example:**

    .. code:: python

        wear.first_reading(command="python3 /opt/gotune/gotune.pyz wear --record",
                           state_file="/var/lib/gotune/wear/state.json")
    """
    if host.get_fact(File, path=state_file):
        host.noop(f"{state_file} exists: the check has run")
        return
    yield StringCommand(f"{command} >/dev/null")
