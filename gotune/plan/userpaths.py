"""Paths a developer user controls, checked before root acts on them.

gotune applies as root, but a user's ``go env`` (any export in their shell profile), their
GOENV file's location and their home's name are the user's to choose. Root moves caches
from these paths, writes the GOENV file at one, and names them in unit files and crontabs.
So each must be a plain absolute path: no control character (a newline starts a new line
of a unit or a crontab), no backslash (systemd unescapes it), no ``.`` or ``..`` part.
A GOENV file is written only inside the user's home: root never writes, say, /etc/shadow
because ``go env GOENV`` said so. (The move itself also checks, on the host, that what it
moves is the user's and a Go cache: ``operations/caches.move_cmd``.)
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]")


def path_problem(path: str) -> str | None:
    """Why root must not act on ``path``, or None when it is a plain absolute path."""
    if not path.startswith("/"):
        return "is not an absolute path"
    if _UNSAFE.search(path):
        return "holds a control character or a backslash"
    if any(part in (".", "..") for part in path.split("/")):
        return "has a '.' or '..' part"
    return None


def inside(path: str, top: str) -> bool:
    """Whether ``path`` is strictly below the directory ``top``."""
    return path.startswith(top.rstrip("/") + "/") and path.rstrip("/") != top.rstrip("/")


def user_path_problems(user: str, paths: dict[str, str | None]) -> list[str]:
    """One message per path (name -> value; None skipped) that root must not act on."""
    return [f"{user}: {name} {value!r} {problem}; gotune leaves {user}'s caches and GOENV alone"
            for name, value in paths.items()
            if value is not None and (problem := path_problem(value))]  # fmt: skip
