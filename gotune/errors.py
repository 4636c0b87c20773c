"""Errors a user sees as one line, never as a traceback."""

from __future__ import annotations


class GotuneError(Exception):
    """A problem the user can fix: bad input, unreadable file, unreachable host.

    The CLI prints ``gotune: <message>`` and exits with ``exit_code``.
    """

    exit_code = 1


class UsageError(GotuneError):
    """The command line itself is wrong (argparse's own errors use the same code)."""

    exit_code = 2

