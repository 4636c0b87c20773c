"""WSL's configuration files merged key by key, and a kernel limit raised at once.

Paired with ``facts/wsl.py`` (``WslFileBytes``: a file's exact bytes and owner) and
``gotune/agent/wslconf.py`` (WSL's dialect: parse, merge, check).

- ``config_file`` sets gotune's keys in ``/etc/wsl.conf`` or ``.wslconfig`` and keeps
  every other byte (comments, order, unknown keys, encoding, byte order mark and line
  ends unless told otherwise). The merge is made and parsed back on the control
  machine before anything runs: a file WSL would not read, an owner other than the
  one wanted, or a result that reads differently from the plan stops the apply with
  nothing written. The new bytes are uploaded beside the file and renamed over it,
  after the old file is recorded for ``gotune undo`` (byte for byte); then
  ``/run/gotune/wsl-restart-needed`` says WSL must restart.
- ``kernel_value`` raises a ``/proc/sys`` value now (its sysctl.d file, written with
  ``operations.state``, keeps it at boot).
"""

from __future__ import annotations

import io
import shlex
from collections.abc import Generator
from typing import Any

from pyinfra import host
from pyinfra.api import FileUploadCommand, OperationError, StringCommand, operation
from pyinfra.facts.files import FileContents

from gotune.agent.paths import WSL_RESTART_MARKER
from gotune.agent.wslconf import UTF8, ConfigError, check_merge, decode, encode, merge
from gotune.facts.sysfs import parse_int
from gotune.facts.wsl import WslFileBytes
from gotune.operations.render import render
from gotune.operations.state import record_path_cmd

q = shlex.quote


def merged_bytes(
    path: str, data: bytes | None, keys: dict[str, str], quoted: list[str],
    newline: str | None, default_newline: str, keep_bom: bool,
) -> bytes:
    """The file's new bytes: ``keys`` merged into ``data`` (None: no file yet), checked.

    Raises OperationError, naming the file, for anything WSL would not read.
    """
    try:
        text, encoding = decode(data) if data is not None else ("", UTF8)
        new = merge(text, keys, frozenset(quoted), newline, keep_bom, default_newline)
        problems = check_merge(text, new, keys)
        if problems:
            raise ConfigError("; ".join(problems))
        return encode(new, encoding)
    except ConfigError as exc:
        raise OperationError(f"{path}: {exc}; nothing written") from None


def marker_cmd(path: str) -> str:
    """Shell that notes, on tmpfs, that WSL must restart for ``path`` to take effect."""
    return (f"mkdir -p {q(WSL_RESTART_MARKER.rsplit('/', 1)[0])} && "
            f"printf '%s\\n' {q(path)} >> {q(WSL_RESTART_MARKER)}")


@operation()
def config_file(
    path: str,
    keys: dict[str, str],
    quoted: list[str] | None = None,
    newline: str | None = None,
    default_newline: str = "\n",
    keep_bom: bool = True,
    owner_uid: int | None = None,
) -> Generator[Any, None, None]:
    """
    Set WSL configuration keys in a file, keeping everything else, recorded for undo.

    + path: ``/etc/wsl.conf`` or ``/mnt/c/Users/NAME/.wslconfig``
    + keys: ``section.key`` -> value (``{"boot.systemd": "true"}``)
    + quoted: keys whose values are written in double quotes
    + newline: write every line end as this (None: keep the file's)
    + default_newline: a new file's line ends
    + keep_bom: keep a byte order mark (False: drop it)
    + owner_uid: refuse unless an existing file belongs to this uid (None: any owner)

    **Example:**

    .. code:: python

        wsl.config_file(path="/etc/wsl.conf", keys={"boot.systemd": "true"}, newline="\\n",
                        keep_bom=False, owner_uid=0)
    """
    now = host.get_fact(WslFileBytes, path=path)
    if now is None:
        raise OperationError(f"{path} cannot be read on the host; nothing written")
    exists, uid, data = now["exists"], now["uid"], now["data"]
    if exists and not isinstance(data, bytes):
        raise OperationError(f"{path} is not a regular file gotune can read; nothing written")
    if exists and owner_uid is not None and uid != owner_uid:
        raise OperationError(f"{path} belongs to uid {uid}, not {owner_uid}: gotune does not "
                             "change it; nothing written")
    old = data if exists and isinstance(data, bytes) else None
    new = merged_bytes(path, old, keys, quoted or [], newline, default_newline, keep_bom)
    if old is not None and new == old:
        host.noop(f"{path} already sets {', '.join(keys)}")
        return
    tmp = f"{path}.gotune-new"
    yield record_path_cmd(path)
    yield FileUploadCommand(io.BytesIO(new), tmp)
    if old is not None:  # drvfs without metadata refuses chown: the Windows ACL rules there
        keep = f"chown --reference={q(path)} {q(tmp)} 2>/dev/null; " \
               f"chmod --reference={q(path)} {q(tmp)} 2>/dev/null; "
    elif owner_uid == 0:
        keep = f"chown root:root {q(tmp)} && chmod 644 {q(tmp)} && "
    else:
        keep = ""
    yield StringCommand(f"{keep}mv -f {q(tmp)} {q(path)}")
    yield marker_cmd(path)


@operation()
def kernel_value(key: str, value: int) -> Generator[Any, None, None]:
    """
    Raise a kernel setting under /proc/sys now, when it is lower.

    + key: the sysctl name (``fs.inotify.max_user_watches``)
    + value: the least value wanted

    **Example:**

    .. code:: python

        wsl.kernel_value(key="fs.inotify.max_user_watches", value=524288)
    """
    proc = "/proc/sys/" + key.replace(".", "/")
    lines = host.get_fact(FileContents, path=proc) or []
    now = parse_int("".join(lines).strip())
    if now is not None and now >= value:
        host.noop(f"{key} is {now}")
        return
    yield StringCommand(f"printf '%s\\n' {int(value)} > {q(proc)}")


def sysctl_snippet(key: str, value: int) -> str:
    """The sysctl.d file that sets ``key`` at every boot."""
    return render("wsl-sysctl.conf.j2", key=key, value=int(value))
