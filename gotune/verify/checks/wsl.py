"""The wsl component's checks: WSL's files hold the plan's keys, Go stays off /mnt.

From the runner's ``wsl`` observations (``gotune.agent.verify.wsl``) and each user's
``go env``: wsl.conf and .wslconfig parse as WSL reads them and set the planned keys;
inotify's limit is at least the planned one; systemd runs once WSL has restarted;
whether ``wsl --shutdown`` is still pending is reported (not a failure: the files
are right, WSL reads them at its next start). GOPATH, GOMODCACHE, GOCACHE and
GOTMPDIR are never on Windows' drives (/mnt/X), in a login or a non-login shell.
"""

from __future__ import annotations

from typing import Any

from gotune.agent.wslconf import parse
from gotune.plan.model import WSL_RESTART, Plan, WslConfig
from gotune.plan.wsl import INOTIFY_WATCHES, SYSTEMD, on_windows_drive
from gotune.verify.checks.base import check

# The Go paths that must never be on a Windows drive.
GO_PATH_KEYS = ("GOPATH", "GOMODCACHE", "GOCACHE", "GOTMPDIR")


def file_check(name: str, obs: dict[str, Any] | None, d: WslConfig | None) -> dict[str, Any]:
    """One file parses as WSL reads it and holds the keys ``d`` planned (none: parses)."""
    if obs is None or not obs.get("exists"):
        if d is not None and d.keys and not d.refused:
            return check(name, False, f"{d.value} is missing")
        return check(name, True, "no such file: WSL's defaults")
    if obs.get("error"):
        return check(name, False, f"{obs.get('path')}: {obs['error']}")
    conf = parse(str(obs.get("text") or ""))
    if conf.problems:
        return check(name, False, f"{obs.get('path')} {conf.problems[0]}")
    if d is None or d.refused:
        return check(name, True, f"{obs.get('path')} parses"
                     + (f" (gotune left it alone: {d.refused})" if d and d.refused else ""))
    have = conf.values()
    wrong = [f"{k} is {have.get(k.lower())!r}, planned {v!r}" for k, v in d.keys.items()
             if have.get(k.lower()) != v]  # fmt: skip
    if wrong:
        return check(name, False, f"{obs.get('path')}: " + "; ".join(wrong))
    return check(name, True, ", ".join(f"{k}={v}" for k, v in d.keys.items()) or "parses")


def host_checks(obs: dict[str, Any], plan: Plan | None) -> list[dict[str, Any]]:
    """wsl.conf, .wslconfig, inotify's limit, systemd and a pending restart."""
    w = plan.wsl if plan is not None else None
    out = [file_check("wsl.conf holds the planned keys", obs.get("conf"), w.conf if w else None)]
    if w is not None and w.wslconfig is not None and not w.wslconfig.refused:
        out.append(file_check(".wslconfig holds the planned keys", obs.get("wslconfig"),
                              w.wslconfig))
    watches = obs.get("max_user_watches")
    floor = int(w.inotify.value) if w and w.inotify.value else INOTIFY_WATCHES
    out.append(check("fs.inotify.max_user_watches", isinstance(watches, int) and watches >= floor,
                     f"{watches} (at least {floor} for gopls and VS Code)"))
    pending = bool(obs.get("restart_pending"))
    if pending:
        out.append(check("WSL restart", True, f"pending: wsl.conf or .wslconfig changed; WSL "
                         f"reads them after `{WSL_RESTART}` from Windows"))
    else:
        out.append(check("WSL restart", True, "none pending"))
    wants_systemd = bool(w and w.conf.keys.get(SYSTEMD) == "true" and not w.conf.refused)
    if wants_systemd:
        running = bool(obs.get("systemd"))
        detail = ("PID 1" if running else f"waits for `{WSL_RESTART}`" if pending else
                  "wsl.conf sets [boot] systemd=true, yet systemd does not run")
        out.append(check("systemd runs", running or pending, detail))
    return out


def user_checks(user: str, rec: dict[str, Any]) -> list[dict[str, Any]]:
    """GOPATH, GOMODCACHE, GOCACHE and GOTMPDIR off Windows' drives, in both shells."""
    found = []
    for shell in ("login", "non_login"):
        env = (rec.get(shell) or {}).get("env") or {}
        for key in GO_PATH_KEYS:
            for entry in str(env.get(key) or "").split(":"):
                if on_windows_drive(entry):
                    found.append(f"{key}={entry} ({shell.replace('_', '-')} shell)")
    name = f"{user}: Go paths off Windows' drives"
    if found:
        return [check(name, False, "; ".join(found) + ": 9p makes every file operation a "
                      "round trip to Windows")]
    return [check(name, True, f"{', '.join(GO_PATH_KEYS)} are on Linux filesystems")]
