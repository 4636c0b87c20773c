"""The commands the verify runner starts, and the one error that stops it."""

from __future__ import annotations

import subprocess

# An error text in the result is a line or a few, never a whole log.
ERROR_TEXT_MAX = 400
# `go env` and a shell's start-up answer in well under a second; a minute means stuck.
QUICK_TIMEOUT_S = 60


class RunnerError(Exception):
    """Something that stops the whole run for this host (no such user, no go)."""


def last_line(text: str, count: int = 1) -> str:
    """The last ``count`` non-empty lines of an error output, joined with " | "."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-count:])[:ERROR_TEXT_MAX]


def run(argv: list[str], timeout: float = QUICK_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """``argv`` from ``/`` with no stdin, its output captured as text."""
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, check=False, cwd="/")
