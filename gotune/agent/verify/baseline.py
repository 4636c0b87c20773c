"""The baseline: each developer user's Go setup as apply found it, before it changed anything.

``gotune apply`` runs ``verify-runner '{"mode": "baseline", "users": [...]}'`` as root
on the host first thing, before any component touches it. For each developer user not
recorded yet it writes, into ``VERIFY_BASELINE`` (atomically; undo removes it):

- ``go``, ``go_version``: the go on their login PATH;
- ``env``: ``go env`` of their login shell for ``RECORDED_KEYS`` (what the GOENV file
  and exported variables made of Go's defaults);
- ``exported``: the GO* variables their login shell exports, ``goenv_file``: the file;
- ``places``: where GOCACHE, GOMODCACHE and GOTMPDIR were: path, filesystem, mount,
  device and storage class.

A user recorded once is never recorded again: the baseline describes the setup
before gotune, not after. ``gotune verify`` rebuilds the ``before`` variant from it
(``variants``). Standard library only.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from gotune.agent import mounts
from gotune.agent.fsutil import write_atomic
from gotune.agent.mounts import MountEntry
from gotune.agent.verify import places
from gotune.agent.verify.process import RunnerError
from gotune.agent.verify.shells import User, login_env, read_goenv_file, shell_go_env
from gotune.agent.verify.variants import COMPARED_KEYS, PLACE_KEYS

BASELINE_VERSION = 1
# Besides the compared keys: what the report shows about the setup of then.
RECORDED_KEYS = (*COMPARED_KEYS, "GOENV", "GOROOT", "GOVERSION")
# Variables of a login shell that change what go does (GO*, and cgo's switch).
EXPORTED_PREFIXES = ("GO", "CGO_")


def capture_user(user: User, table: list[MountEntry]) -> dict[str, Any]:
    """One user's record (see the module docstring); ``error`` when there is no go env."""
    rec: dict[str, Any] = {"recorded": time.time(), "go": None, "env": {}, "places": {}}
    try:
        login = login_env(user)
    except RunnerError as exc:
        rec["error"] = str(exc)
        return rec
    rec["exported"] = {k: v for k, v in sorted(login.items())
                       if k.startswith(EXPORTED_PREFIXES)}
    rec["goenv_file"] = read_goenv_file(login, user.home)
    shell = shell_go_env(user, True, None, list(RECORDED_KEYS))
    if not shell.get("ok"):
        rec["error"] = str(shell.get("error"))
        return rec
    env = {k: str(v) for k, v in (shell.get("env") or {}).items() if k in RECORDED_KEYS}
    rec.update(go=shell.get("path"), go_version=env.get("GOVERSION"), env=env)
    for key in PLACE_KEYS:
        if env.get(key):
            rec["places"][key] = places.place(env[key], table) | {
                "path": env[key], "exists": os.path.isdir(env[key])}
    return rec


def read(path: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the baseline, None) or (None, why there is none)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None, ("no baseline recorded on this host: gotune apply records the user's "
                      "setup before it changes anything")
    except (OSError, ValueError) as exc:
        return None, f"{path}: {getattr(exc, 'strerror', None) or exc}"
    if not isinstance(data, dict) or not isinstance(data.get("users"), dict):
        return None, f"{path}: not a gotune baseline"
    return data, None


def record(path: str, users: list[str], home: str | None = None) -> dict[str, Any]:
    """Record every user of ``users`` not in the baseline yet; keep the others as they are.

    + path: the baseline file (``VERIFY_BASELINE``)
    + users: the host's developer users
    + home: a home override for the current user (tests)
    """
    data, _why = read(path)
    if data is None:
        data = {"version": BASELINE_VERSION, "users": {}}
    outcome: dict[str, str] = {}
    table = mounts.read_mountinfo()
    for name in users:
        if name in data["users"]:
            outcome[name] = "kept"
            continue
        try:
            data["users"][name] = capture_user(User(name, home), table)
        except RunnerError as exc:  # no such user: recorded as such, apply goes on
            data["users"][name] = {"recorded": time.time(), "go": None, "error": str(exc)}
        outcome[name] = "recorded"
    if "recorded" in outcome.values():
        write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    return {"baseline": path, "users": outcome}
