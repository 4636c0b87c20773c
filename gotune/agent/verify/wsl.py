"""What verify sees of a WSL2 distro's settings, on the host (standard library only).

The files as they are (``/etc/wsl.conf``, and the ``.wslconfig`` the stored plan
names), inotify's limit, whether systemd runs, and whether a restart is still
pending (``/run/gotune/wsl-restart-needed``). The control side's checks
(``gotune/verify/checks/wsl.py``) parse them with the same ``gotune.agent.wslconf``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from gotune.agent.paths import INOTIFY_WATCHES, PLAN_PATH, WSL_CONF, WSL_RESTART_MARKER
from gotune.agent.wslconf import ConfigError, decode

OSRELEASE = "/proc/sys/kernel/osrelease"
# Larger than any WSL configuration file: a bigger one is not read whole.
MAX_BYTES = 1 << 20


def on_wsl(osrelease: str = OSRELEASE) -> bool:
    """Whether this host runs a WSL kernel (``...-microsoft-standard-WSL2``)."""
    try:
        with open(osrelease, encoding="ascii", errors="replace") as fh:
            return "microsoft" in fh.read().lower()
    except OSError:
        return False


def read_file(path: str) -> dict[str, Any]:
    """A configuration file: ``exists``, and its ``text`` or the ``error`` reading it."""
    out: dict[str, Any] = {"path": path, "exists": os.path.lexists(path)}
    if not out["exists"]:
        return out
    try:
        with open(path, "rb") as fh:
            out["text"], out["encoding"] = decode(fh.read(MAX_BYTES))
    except (OSError, ConfigError) as exc:
        out["error"] = str(exc)
    return out


def planned_wslconfig(plan_path: str = PLAN_PATH) -> str | None:
    """The .wslconfig path the stored plan names (None: no plan, or none planned)."""
    try:
        with open(plan_path, encoding="utf-8") as fh:
            plan = json.load(fh)
        found = [d.get("value") for d in plan.get("decisions", [])
                 if isinstance(d, dict) and d.get("key") == ".wslconfig"]
    except (OSError, ValueError, AttributeError):
        return None
    value = found[0] if found else None
    return value if isinstance(value, str) and value.startswith("/") else None


def observe() -> dict[str, Any] | None:
    """The WSL observations of this host; None when it is not WSL."""
    if not on_wsl():
        return None
    out: dict[str, Any] = {
        "conf": read_file(WSL_CONF),
        "restart_pending": os.path.exists(WSL_RESTART_MARKER),
        "systemd": os.path.isdir("/run/systemd/system"),
        "max_user_watches": None,
    }
    wslconfig = planned_wslconfig()
    if wslconfig:
        out["wslconfig"] = read_file(wslconfig)
    try:
        with open(INOTIFY_WATCHES, encoding="ascii") as fh:
            out["max_user_watches"] = int(fh.read().strip())
    except (OSError, ValueError):
        pass
    return out
