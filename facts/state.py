"""What gotune itself left on a host: undo records, the stored plan, measurements, services.

Read by the same one collector command as the hardware (its "gotune's own state"
section), so the planner sees, in one document, what an earlier apply did: the
plan it carried out (``/var/lib/gotune/plan.json``), the NUMA wrappers' figures
(``numa.json``) and the build cache helper's (``buildcache.json``), the mirror,
build cache and wear check it installed, and the undo records
(``/var/lib/gotune/undo``; written by ``operations/state.py``, replayed by
``operations/undo.py``).
"""

from __future__ import annotations

import json
from typing import Any

from pyinfra.api import FactBase

from gotune.agent.paths import (
    BUILDCACHE_HELPER_SHA,
    BUILDCACHE_RECORD,
    BUILDCACHE_SUPERVISOR,
    BUILDCACHE_UNIT_FILE,
    MIRROR_SUPERVISOR,
    MIRROR_UNIT_FILE,
    NUMA_RECORD,
    PLAN_PATH,
    UNDO_DIR,
    VERIFY_BASELINE,
)
from gotune.facts.collect import Dump
from gotune.facts.mirror import parse_installed
from gotune.facts.model import CacheMove, GotuneState, InstalledPackage, UndoRecord
from gotune.facts.wear import installed_runner

# Where a cron daemon lives on Debian/Ubuntu (cron), Fedora/RHEL and Arch (cronie's crond).
CRON_DAEMONS = ("/usr/sbin/cron", "/usr/sbin/crond", "/usr/bin/crond", "/sbin/crond")


def _unhex(text: str) -> str:
    return bytes.fromhex(text).decode(errors="replace")


def parse_undo(dump: Dump) -> UndoRecord:
    """The undo records the collector listed; a damaged record is skipped, never guessed at."""
    rec = UndoRecord()
    prefix = f"{UNDO_DIR}/"
    for path in sorted(p for p in dump.exists if p.startswith(prefix)):
        kind, _, base = path[len(prefix) :].partition("/")
        first = dump.value(path) or ""
        try:
            if kind == "files":
                absent = base.endswith(".absent")
                rec.files[_unhex(base.removesuffix(".absent"))] = not absent
            elif kind == "created":
                rec.created.append(_unhex(base))
            elif kind == "dirs":
                rec.dirs.append(_unhex(base))
            elif kind == "moves":
                user, _, key = base.partition(".")
                src, dst = first.split()
                rec.moves.append(CacheMove(user, key, _unhex(src), _unhex(dst)))
            elif kind == "mounts":
                rec.mounts.append(_unhex(base))
            elif kind == "units":
                rec.units.append(base)
            elif kind == "users":
                rec.users.append(base)
            elif kind == "owners" and first:
                rec.owners[_unhex(base)] = first
            elif kind == "packages":
                tool, _, package = first.partition(" ")
                if tool and package:
                    rec.packages.append(InstalledPackage(tool, package))
        except ValueError:
            continue
    return rec


def parse_json_object(text: str | None) -> dict[str, Any] | None:
    """A JSON object from a state file; garbled or foreign JSON is no record at all."""
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def parse_measured(text: str | None) -> dict[str, dict[str, Any]]:
    """The per-tool entries of the NUMA record (``{"tools": {TOOL: {...}}}``)."""
    tools = (parse_json_object(text) or {}).get("tools")
    if not isinstance(tools, dict):
        return {}
    return {str(k): v for k, v in tools.items() if isinstance(v, dict)}


def parse_state(dump: Dump) -> GotuneState:
    # Imported here: facts/buildcache.py reads its record with parse_json_object above.
    from gotune.facts.buildcache import parse_installed as parse_buildcache

    return GotuneState(
        undo=parse_undo(dump),
        plan=parse_json_object(dump.text(PLAN_PATH)),
        numa_measured=parse_measured(dump.text(NUMA_RECORD)),
        mirror=parse_installed(dump.text(MIRROR_UNIT_FILE), dump.text(MIRROR_SUPERVISOR)),
        wear=installed_runner(dump),
        buildcache=parse_buildcache(dump.text(BUILDCACHE_UNIT_FILE),
                                    dump.text(BUILDCACHE_SUPERVISOR),
                                    dump.value(BUILDCACHE_HELPER_SHA)),
        buildcache_measured=parse_json_object(dump.text(BUILDCACHE_RECORD)),
    )


def has_cron(dump: Dump) -> bool:
    return any(path in dump.exists for path in CRON_DAEMONS)


class StoredPlan(FactBase[dict[str, Any]]):
    """
    The plan the last apply carried out (``/var/lib/gotune/plan.json``), as stored;
    None when apply never ran. ``gotune verify`` compares the host with it.

    .. code:: python

        {"decisions": [{"key": "GOCACHE", "value": "/var/cache/gotune/tmpfs/dev/go-build",
                        "kind": "tmpfs", ...}], "warnings": []}
    """

    def command(self) -> str:
        return f"! test -f {PLAN_PATH} || cat {PLAN_PATH}"

    def process(self, output: list[str]) -> dict[str, Any] | None:  # type: ignore[override]
        return parse_json_object("\n".join(output))


class RecordedBaseline(FactBase[list[str]]):
    """
    The developer users whose setup before gotune is recorded in the baseline
    (``/var/lib/gotune/verify/baseline.json``); empty when there is none. Apply
    records the others, and never re-records these.

    .. code:: python

        ["alice", "bob"]
    """

    default = list

    def command(self, path: str = VERIFY_BASELINE) -> str:
        return f"! test -f {path} || cat {path}"

    def process(self, output: list[str]) -> list[str]:
        users = (parse_json_object("\n".join(output)) or {}).get("users")
        return sorted(users) if isinstance(users, dict) else []
