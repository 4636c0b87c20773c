"""Verify's results kept on the host (JSON lines), for the trend chart.

As root the history is the host's (``VERIFY_HISTORY``); run as a user, it is that
user's (``$XDG_STATE_HOME/gotune/verify/history.jsonl``).
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from gotune.agent.fsutil import write_atomic
from gotune.agent.paths import VERIFY_HISTORY

# Verify keeps at most this many results per host; older lines are dropped.
HISTORY_MAX_LINES = 1000
# How many earlier results the runner sends back for the trend chart.
HISTORY_SEND_LINES = 60


def history_path(user_home: str) -> str:
    """Where this run's results are kept: the host's as root, else the user's."""
    if os.getuid() == 0:
        return VERIFY_HISTORY
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(user_home, ".local", "state")
    return os.path.join(state, "gotune", "verify", "history.jsonl")


def _lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().splitlines()
    except FileNotFoundError:
        return []


def read_history(path: str) -> list[Any]:
    """The last ``HISTORY_SEND_LINES`` results; a torn or garbled line is skipped."""
    try:
        lines = _lines(path)
    except OSError:
        return []
    out: list[Any] = []
    for line in lines[-HISTORY_SEND_LINES:]:
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def append_history(path: str, record: Any) -> None:
    """Add one result, keeping the last ``HISTORY_MAX_LINES`` (the file is rewritten whole)."""
    lines = [*_lines(path), json.dumps(record, sort_keys=True)][-HISTORY_MAX_LINES:]
    write_atomic(path, "\n".join(lines) + "\n")
