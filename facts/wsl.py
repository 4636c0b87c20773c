"""The wsl component's facts: a WSL2 distro's settings and the Windows host under it.

The collector's WSL section (``collect_wsl`` in ``collect.sh``, live WSL hosts only)
reads ``/etc/wsl.conf`` and its owner; finds the Windows user's profile (the setting
``gotune_wsl_windows_profile``, else ``cmd.exe /c echo %USERPROFILE%`` through
interop, turned into a Linux path by ``wslpath -u``) and reads its ``.wslconfig``
byte for byte; asks PowerShell for the Windows host's RAM and logical processors;
reads ``fs.inotify.max_user_watches``; times lookups of a missing command with and
without the Windows entries of ``$PATH``, and one file lookup on each Windows drive
against ``/``; and lists Go modules under /mnt that each developer worked in (shell
history, VS Code's WSL workspaces). Every Windows call runs under a timeout; with
interop off they are unknown, with the reason.

``WslFileBytes`` is the operation-time fact ``operations/wsl.py`` merges into.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import shlex

from pyinfra.api import FactBase

from gotune.agent.paths import INOTIFY_WATCHES, WSL_CONF, WSL_RECORD, WSL_RESTART_MARKER
from gotune.agent.wslconf import ConfigError, decode
from gotune.facts.collect import WSL_LOOKUPS, Dump
from gotune.facts.model import Wsl, WslConfigFile, WslDriveCost, WslProject
from gotune.facts.sysfs import parse_int

# Windows' own folders on its drives, the way WSL appends them to PATH (/mnt/c/...).
_WINDOWS_ENTRY = re.compile(r"^/mnt/[a-z](/|$)")
NS_PER_S = 1e9


def config_file(dump: Dump, path: str, owner: str | None = None) -> WslConfigFile:
    """A WSL configuration file from the collector's whole-file record of it."""
    data = dump.files.get(path)
    found = WslConfigFile(path=path, exists=data is not None or path in dump.errors)
    if owner is not None:
        found.owner_uid = parse_int((dump.output(owner) or "").strip())
    if path in dump.errors:
        found.error = dump.errors[path]
    if data is None:
        return found
    try:
        found.text, found.encoding = decode(data)
    except ConfigError as exc:
        found.error = str(exc)
    return found


def _key_values(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (text or "").replace("\r", "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and key.strip() not in out:
            out[key.strip()] = value.strip()
    return out


def windows_entries(path: str) -> list[str]:
    """The entries of a ``$PATH`` that lie on Windows' drives (``/mnt/c/...``)."""
    return [p for p in path.split(":") if _WINDOWS_ENTRY.match(p)]


def lookup_samples(text: str | None, lookups: int) -> tuple[list[float], list[float]]:
    """(seconds per lookup with the Windows entries, without them) from "with NS" lines."""
    got: dict[str, list[float]] = {"with": [], "without": []}
    for line in (text or "").splitlines():
        which, _, ns = line.partition(" ")
        value = parse_int(ns.strip())
        if which in got and value is not None and value >= 0 and lookups > 0:
            got[which].append(value / NS_PER_S / lookups)
    return got["with"], got["without"]


def drive_costs(text: str | None) -> list[WslDriveCost]:
    """Per Windows drive, milliseconds per lookup there and on / (lines "MOUNT NS NS N")."""
    out: list[WslDriveCost] = []
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) != 4:
            continue
        there, root, ops = (parse_int(f) for f in fields[1:])
        if there is None or root is None or not ops:
            continue
        out.append(WslDriveCost(fields[0], there / ops / 1e6, root / ops / 1e6, ops))
    return out


def projects(dump: Dump, users: list[str]) -> list[WslProject]:
    """Go modules under /mnt each developer worked in ("SOURCE<TAB>DIR" lines)."""
    found: list[WslProject] = []
    for user in users:
        for line in (dump.output(f"wsl projects {user}") or "").splitlines():
            source, sep, path = line.partition("\t")
            if sep and _WINDOWS_ENTRY.match(path):
                found.append(WslProject(user=user, path=path, source=source))
    return found


def recorded(text: str | None) -> dict[str, object] | None:
    """What an earlier apply recorded about appendWindowsPath (garbled: nothing)."""
    try:
        data = json.loads(text) if text else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def parse_wsl(dump: Dump, users: list[str], unknown: list[str]) -> Wsl:
    """The WSL facts of a live WSL2 host (its collector ran the WSL section)."""
    wsl = Wsl(conf=config_file(dump, WSL_CONF, owner="wsl.conf owner"))
    if wsl.conf.exists and wsl.conf.owner_uid is None:
        unknown.append(f"wsl: owner of {WSL_CONF} unknown")
    profile = _key_values(dump.output("wsl profile"))
    if profile.get("path", "").startswith("/"):
        wsl.windows_profile = profile["path"].rstrip("/") or "/"
        wsl.profile_source = profile.get("source")
        wsl.windows_profile_exists = wsl.windows_profile in dump.exists
        wsl.wslconfig = config_file(dump, f"{wsl.windows_profile}/.wslconfig")
    else:
        why = profile.get("error") or "the collector found no Windows profile"
        wsl.windows_error = why
        unknown.append(f"wsl: Windows profile: {why}")
    hardware = _key_values(dump.output("wsl windows"))
    wsl.windows_memory_bytes = parse_int(hardware.get("memory", ""))
    wsl.windows_cpus = parse_int(hardware.get("cpus", ""))
    if wsl.windows_memory_bytes is None or wsl.windows_cpus is None:
        got = dump.commands.get("wsl windows")
        why = hardware.get("error") or (
            f"PowerShell answered status {got[1]}" if got else "PowerShell did not run")
        wsl.windows_error = wsl.windows_error or why
        unknown.append(f"wsl: Windows RAM and processors: {why}")
    wsl.max_user_watches = parse_int(dump.value(INOTIFY_WATCHES) or "")
    path = (dump.output("wsl path") or "").strip("\n")
    wsl.path_entries = [p for p in path.split(":") if p]
    wsl.windows_path_entries = windows_entries(path)
    wsl.lookup_with_s, wsl.lookup_without_s = lookup_samples(
        dump.output("wsl path lookups"), WSL_LOOKUPS)
    wsl.recorded = recorded(dump.text(WSL_RECORD))
    wsl.projects = projects(dump, users)
    wsl.drive_costs = drive_costs(dump.output("wsl drive cost"))
    wsl.restart_pending = WSL_RESTART_MARKER in dump.exists
    return wsl


class WslFileBytes(FactBase[dict[str, object]]):
    """
    A WSL configuration file's exact bytes and owner, as apply merges into them; None
    when it could not be read.

    + path: the file (``/etc/wsl.conf``, ``/mnt/c/Users/NAME/.wslconfig``)

    .. code:: python

        {"exists": True, "uid": 0, "data": b"[boot]\\nsystemd=true\\n"}
    """

    def command(self, path: str) -> str:
        p = shlex.quote(path)
        return (f"if test -f {p}; then stat -c %u {p} && base64 -w0 {p} && echo; "
                f"elif test -e {p} || test -L {p}; then echo notafile; else echo absent; fi")

    def process(self, output: list[str]) -> dict[str, object] | None:  # type: ignore[override]
        lines = [line.strip() for line in output]
        if lines == ["absent"]:
            return {"exists": False, "uid": None, "data": b""}
        if not lines:
            return None  # the command failed: unknown, never "absent"
        if lines[0] == "notafile":
            return {"exists": True, "uid": None, "data": None}
        try:
            data = base64.b64decode("".join(lines[1:]), validate=True)
        except (binascii.Error, ValueError):
            data = None
        return {"exists": True, "uid": parse_int(lines[0]), "data": data}
