"""The caches component's checks: ``go env`` as the user sees it, and where caches live.

``go env`` in a login and a non-login shell (an IDE's) must show the planned
GOCACHE, GOMODCACHE, GOTMPDIR and GOPROXY; each cache must be owned and writable
by the user, on the planned kind of filesystem, and a tmpfs must be capped and
not full. Expected values come from the stored plan (``expected_from_plan``), or
without one from the user's GOENV file, which apply writes.
"""

from __future__ import annotations

import re
from typing import Any

from gotune.agent.mounts import is_network_or_fuse
from gotune.agent.units import format_bytes as human_bytes
from gotune.facts.model import STORAGE_CLASSES
from gotune.plan.model import Plan
from gotune.verify.checks.base import check

# Keys of `go env` whose values gotune plans; the others are compared only when planned.
PLANNED_KEYS = ("GOCACHE", "GOMODCACHE", "GOTMPDIR", "GOPROXY", "GOFLAGS")
# A tmpfs GOCACHE/GOTMPDIR with less free space than this cannot take the next
# link of a mid-size program (cmd/go writes a 20 MiB binary plus cache entries),
# so builds are about to fail with "no space left on device".
TMPFS_MIN_FREE_BYTES = 64 * 1024**2
# Keys that `go env` prints empty when unset (GOCACHE/GOMODCACHE print Go's default path).
UNSET_MEANS_EMPTY = frozenset({"GOTMPDIR", "GOFLAGS"})
# Caches that Go creates on first use: missing before any download is normal.
CREATED_ON_USE = frozenset({"GOMODCACHE"})


def expected_from_plan(plan: Plan, user: str) -> tuple[dict[str, str], dict[str, str]]:
    """(go env values, media) the plan wants for ``user``.

    + plan: the stored plan (``Plan.from_dict`` of ``/var/lib/gotune/plan.json``)
    + user: the developer user
    """
    values: dict[str, str] = {}
    media: dict[str, str] = {}
    caches = plan.caches.get(user)
    for d in caches.decisions() if caches else []:
        if d.value:
            values[d.key] = d.value
        elif d.key in UNSET_MEANS_EMPTY:
            values[d.key] = ""  # planned unset: go env prints an empty value
        media[d.key] = d.medium
    goenv = plan.goenv.get(user)
    proxy = goenv.values.get("GOPROXY") if goenv else None
    if proxy:
        values["GOPROXY"] = proxy
    return values, media


def expected_from_goenv(rec: dict[str, Any]) -> dict[str, str]:
    goenv = rec.get("goenv_file") or {}
    values = goenv.get("values") or {}
    return {k: str(v) for k, v in values.items() if k in PLANNED_KEYS}


def _shown(value: Any) -> str:
    return "unset" if value in ("", None) else repr(value)


def _go_env_check(user: str, rec: dict[str, Any], which: str, expected: dict[str, str],
                  source: str) -> dict[str, Any]:
    label = "login" if which == "login" else "non-login"
    name = f"{user}: go env ({label} shell)"
    shell = rec.get(which) or {}
    if not shell.get("ok"):
        return check(name, False, str(shell.get("error") or "go env failed"))
    if not expected:
        return check(name, False, f"nothing to compare: {source} (has gotune apply run?)")
    env = shell.get("env") or {}
    wrong = [f"{k} is {_shown(env.get(k))}, planned {_shown(v)}"
             for k, v in sorted(expected.items()) if env.get(k) != v]
    if wrong:
        return check(name, False, "; ".join(wrong))
    shown = ", ".join(f"{k}={v or '(unset)'}" for k, v in sorted(expected.items()))
    return check(name, True, f"{shown} (as {source.split(':')[0]})")


def _size_cap(super_options: str) -> int | None:
    m = re.search(r"(?:^|,)size=(\d+)([kmg]?)(?:,|$)", super_options or "")
    if not m:
        return None
    scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2)]
    return int(m.group(1)) * scale


def path_checks(user: str, uid: int, key: str, obs: dict[str, Any],
                medium: str | None) -> list[dict[str, Any]]:
    """Owned and writable by the user; on a suitable (and the planned) filesystem."""
    out: list[dict[str, Any]] = []
    path = obs.get("path", "?")
    name = f"{user}: {key} owned by {user}"
    if not obs.get("exists"):
        if key in CREATED_ON_USE:
            out.append(check(name, True, f"{path} not created yet (Go creates it on first use)"))
        else:
            out.append(check(name, False, f"{path} does not exist"))
    elif obs.get("uid") != uid:
        out.append(check(name, False, f"{path} is owned by {obs.get('owner')}"))
    elif not obs.get("writable"):
        out.append(check(name, False, f"{path}: {obs.get('write_error') or 'not writable'}"))
    else:
        out.append(check(name, True, f"{path} ({obs.get('mode')})"))
    fstype = obs.get("fstype")
    where = f"{fstype} at {obs.get('mount')}"
    if obs.get("device"):
        where += f" on {obs['device']}"
    name = f"{user}: {key} filesystem"
    if is_network_or_fuse(fstype):
        out.append(check(name, False, f"{path} is on {where}: network/host-shared storage"))
    elif medium == "tmpfs" and fstype != "tmpfs":
        out.append(check(name, False, f"{path} is on {where}, planned tmpfs"))
    elif medium in STORAGE_CLASSES and fstype == "tmpfs":
        out.append(check(name, False, f"{path} is on tmpfs; the plan wants persistent "
                                      f"storage ({medium})"))
    elif key == "GOMODCACHE" and fstype == "tmpfs":
        out.append(check(name, False, f"{path} is on tmpfs: the module cache must persist"))
    else:
        planned = f", planned {medium}" if medium else ""
        out.append(check(name, True, f"{where}{planned}"))
    return out


def tmpfs_checks(user: str, paths: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each tmpfs holding a cache: size-capped, and not full."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for obs in paths.values():
        mount = obs.get("mount")
        if obs.get("fstype") != "tmpfs" or not mount or mount in seen:
            continue
        seen.add(mount)
        cap = _size_cap(str(obs.get("super_options") or ""))
        size, free = obs.get("size_bytes"), obs.get("free_bytes")
        if cap is None:
            out.append(check(f"{user}: tmpfs {mount} capped", False,
                             "no size= option: it may grow to half of RAM"))
        else:
            out.append(check(f"{user}: tmpfs {mount} capped", True, f"size={human_bytes(cap)}"))
        if free is not None and free < TMPFS_MIN_FREE_BYTES:
            out.append(check(f"{user}: tmpfs {mount} has room", False,
                             f"full: {human_bytes(free)} free of {human_bytes(size)}"))
        else:
            out.append(check(f"{user}: tmpfs {mount} has room", True,
                             f"{human_bytes(free)} free of {human_bytes(size)}"))
    return out


def user_checks(user: str, rec: dict[str, Any], plan: Plan | None) -> list[dict[str, Any]]:
    """go env in both shells, each cache's owner and filesystem, and tmpfs room."""
    if plan is not None:
        expected, media = expected_from_plan(plan, user)
        source = "the plan"
    else:
        expected, media = expected_from_goenv(rec), {}
        goenv = rec.get("goenv_file") or {}
        source = f"the GOENV file: {goenv.get('path', '?')}"
        if goenv and not goenv.get("exists"):
            source = f"the GOENV file: no {goenv.get('path')}"
    out = [_go_env_check(user, rec, "login", expected, source),
           _go_env_check(user, rec, "non_login", expected, source)]
    paths = rec.get("paths") or {}
    for key in ("GOCACHE", "GOMODCACHE", "GOTMPDIR"):
        if key in paths:
            out.extend(path_checks(user, int(rec.get("uid", -1)), key, paths[key],
                                   media.get(key)))
    out.extend(tmpfs_checks(user, paths))
    return out
