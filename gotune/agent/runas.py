"""Run a tool as a developer user from a root agent command, and time it.

The agent's measuring commands (``numa-measure``, ``buildcache-measure``) run as root
on the host and time the developer's tools as the developer: their uid and gid, no
supplementary groups, their home, a plain PATH with the tool's own directory first.
Standard library only.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from dataclasses import dataclass
from typing import Any

# A workload that runs longer than this is not a measurement but a hang.
RUN_TIMEOUT_S = 600


@dataclass(frozen=True)
class Account:
    """Who a workload runs as: the environment, ids and home."""

    env: dict[str, str]
    uid: int
    gid: int
    home: str


def account(user: str, tool: str) -> Account:
    """``user``'s account with a minimal environment; ``tool``'s directory first on PATH,
    so a wrapper's PATH search finds the very binary the plain arm runs."""
    pw = pwd.getpwnam(user)
    env = {
        "HOME": pw.pw_dir,
        "USER": user,
        "LOGNAME": user,
        "PATH": f"{os.path.dirname(tool)}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
    }
    return Account(env, pw.pw_uid, pw.pw_gid, pw.pw_dir)


def _run(argv: list[str], who: Account, cwd: str, env: dict[str, str] | None,
         timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` as ``who`` (root's own uid runs as is), its stdout captured; RuntimeError
    with the last line of its stderr when it fails."""
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0 and who.uid != 0:
        as_user = {"user": who.uid, "group": who.gid, "extra_groups": []}
    proc = subprocess.run(
        argv, env=who.env if env is None else env, cwd=cwd, stdin=subprocess.DEVNULL,
        capture_output=True, timeout=timeout, check=False, **as_user,
    )  # fmt: skip
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise RuntimeError(f"{' '.join(argv[:3])} exited {proc.returncode}: {tail[0][:200]}")
    return proc


def run_timed(argv: list[str], who: Account, cwd: str, env: dict[str, str] | None = None,
              timeout: float = RUN_TIMEOUT_S) -> float:
    """Seconds ``argv`` took as ``who``.

    + env: the environment (default: ``who.env``)
    """
    start = time.perf_counter()
    _run(argv, who, cwd, env, timeout)
    return time.perf_counter() - start


def output(argv: list[str], who: Account, cwd: str, env: dict[str, str] | None = None,
           timeout: float = RUN_TIMEOUT_S) -> str:
    """What ``argv`` prints as ``who``."""
    return _run(argv, who, cwd, env, timeout).stdout.decode(errors="replace")
