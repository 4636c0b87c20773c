"""A developer user's GOENV file: the settings every Go process of that user reads.

The file is what ``go env -w`` writes: one ``NAME=value`` per line, no quoting.
gotune changes only its own keys and keeps every other line; an IDE launched
from a desktop (which never reads /etc/profile.d) sees the same settings as a
shell. ``go env -w`` refuses values with newlines, and so does the planner.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

from pyinfra import host
from pyinfra.api import OperationError, operation

from gotune.facts.caches import ResolvedPath
from gotune.operations.state import file as state_file
from gotune.operations.state import file_lines
from gotune.plan.goenv import GOENV_KEYS
from gotune.plan.userpaths import inside


def updated(lines: list[str], values: Mapping[str, str | None]) -> list[str]:
    """``lines`` with each key set to its value (None: removed), other lines kept in order."""
    out: list[str] = []
    seen: set[str] = set()
    for line in lines:
        key = line.split("=", 1)[0].strip()
        if key in values:
            if key not in seen and values[key] is not None:
                out.append(f"{key}={values[key]}")
            seen.add(key)
            continue
        out.append(line)
    out.extend(f"{k}={v}" for k, v in values.items() if k not in seen and v is not None)
    return out


@operation()
def settings(
    user: str, group: str, home: str, path: str, values: dict[str, str | None]
) -> Generator[Any, None, None]:
    """
    Set Go environment settings in a user's GOENV file, owned by the user.

    + user: the developer user
    + group: the user's primary group
    + home: the user's home (missing directories below it are created, owned by the user)
    + path: the GOENV file
    + values: setting -> value; None removes the setting

    **Example:**

    .. code:: python

        goenv.settings(user="alice", group="alice", home="/home/alice",
                       path="/home/alice/.config/go/env",
                       values={"GOMODCACHE": "/data/gotune/alice/mod"})
    """
    for key, value in values.items():
        if key not in GOENV_KEYS:
            raise OperationError(f"{key}: gotune writes only {', '.join(GOENV_KEYS)} to GOENV")
        if value is not None and ("\n" in value or "\r" in value):
            raise OperationError(f"{key}: a value with a newline cannot go into GOENV")
    # The file is the user's to place, and it is read and written as the user (a link to
    # /etc/shadow leads nowhere they cannot go already). One leading out of their home is
    # refused here all the same, with a message, before any host changes.
    real_home = host.get_fact(ResolvedPath, path=home)["resolved"]
    found = host.get_fact(ResolvedPath, path=path)
    if not inside(found["resolved"], real_home) or found["owner"] != user:
        raise OperationError(
            f"{host.name}: {path} leads to {found['resolved']} (owned by "
            f"{found['owner'] or '?'}), not to a file of {user}'s in {home}: gotune writes "
            "GOENV only there"
        )
    lines = file_lines(path)
    new = updated(lines or [], values)
    if lines is not None and new == lines:
        host.noop(f"{path} already sets {', '.join(values)}")
        return
    if lines is None and not new:
        host.noop(f"{path}: nothing to set")
        return
    content = "\n".join(new) + "\n" if new else ""
    yield from state_file._inner(path=path, content=content, user=user, group=group,
                                 mode=0o644, parents_from=home, as_owner=True)  # fmt: skip
