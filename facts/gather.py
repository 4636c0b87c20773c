"""Gather one host's complete facts document: one collector command, every developer user.

Runs in pyinfra's host context (a deploy, ``gotune apply``, ``gotune plan``). The
planner reads nothing else, so ``gotune facts --json`` saved to a file and fed to
``gotune plan --facts FILE`` gives the plan apply would carry out on that host.
"""

from __future__ import annotations

from pyinfra import host

from gotune.errors import GotuneError
from gotune.facts.machine import Machine
from gotune.facts.model import Facts
from gotune.settings import Settings

# Seconds for one host's collector; statvfs and go env have their own, shorter limits.
COLLECT_TIMEOUT_S = 120


def gather(settings: Settings) -> Facts:
    """The current host's facts for its developer users (``gotune_users``).

    Raises GotuneError when a developer user does not exist on the host.
    """
    facts: Facts = host.get_fact(
        Machine, users=list(settings.users), windows_profile=settings.wsl_windows_profile,
        _timeout=COLLECT_TIMEOUT_S,
    )
    missing = [name for name, uf in facts.users.items() if uf.user.uid is None]
    if missing and facts.connected_uid is not None:
        raise GotuneError(
            f"host {host.name}: user {missing[0]} (gotune_users) does not exist there"
        )
    return facts
