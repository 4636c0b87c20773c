"""The wear component's facts: how the periodic SSD wear check runs on the host, if it does.

Read by the collector with gotune's other state (``facts/state.py``); the wear
readings themselves are taken on the host by the agent (``gotune.agent.wear``).
"""

from __future__ import annotations

from gotune.agent.paths import WEAR_CRON, WEAR_TIMER
from gotune.facts.collect import Dump


def installed_runner(dump: Dump) -> str | None:
    """"systemd" (a timer), "cron" (a cron file) or None: how the installed check runs."""
    if WEAR_TIMER in dump.exists:
        return "systemd"
    return "cron" if WEAR_CRON in dump.exists else None
