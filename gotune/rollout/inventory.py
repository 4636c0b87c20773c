"""The fleet's hosts as pyinfra inventories: one wave's part, and the re-run file.

A wave is a pyinfra Inventory of its hosts alone, each with all its data (host, group
and global data merged, as pyinfra resolves them) and its groups, so pyinfra connects,
prepares and runs exactly those hosts in parallel and nothing else.

The re-run inventory (``fleet.rerun.py`` beside the state file) lists the hosts that
failed or were not reached, with their data, as a pyinfra inventory file: ``gotune
rollout fleet.rerun.py`` or plain ``pyinfra fleet.rerun.py deploys/laptop.py`` runs them.
"""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gotune.agent.fsutil import write_atomic

# The group every host of a re-run inventory is in (its variable in the file).
RERUN_GROUP = "rerun"


def part(inventory: Any, names: Iterable[str]) -> Any:
    """A new pyinfra Inventory holding only ``names`` of ``inventory``, with their data.

    + inventory: the loaded fleet inventory
    + names: the hosts to keep, in the order to keep them
    """
    from pyinfra.api import Inventory

    hosts = [inventory.get_host(name) for name in names]
    groups: dict[str, list[str]] = {}
    for host in hosts:
        for group in host.groups:
            groups.setdefault(group, []).append(host.name)
    return Inventory(
        ([(h.name, h.data.dict()) for h in hosts], {}),
        **{group: (members, {}) for group, members in groups.items()},
    )


def rerun_path(state_path: Path) -> Path:
    """``fleet.rollout.json`` -> ``fleet.rerun.py`` (beside the state file)."""
    stem = state_path.name.removesuffix(".json").removesuffix(".rollout")
    return state_path.with_name(stem + ".rerun.py")


def _literal(value: Any) -> bool:
    """True when ``repr(value)`` reads back as the same value (a pyinfra file can hold it)."""
    try:
        return bool(ast.literal_eval(repr(value)) == value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def rerun_text(hosts: list[tuple[str, dict[str, Any], str]]) -> str:
    """The re-run inventory file: one ``(name, data)`` per host, why it is there above it.

    + hosts: (name, its merged data, why it failed) per host
    """
    lines = ['"""Hosts to re-run: they failed or were not reached (written by gotune rollout)."""',
             "", f"{RERUN_GROUP} = ["]  # fmt: skip
    for name, data, why in hosts:
        kept = {k: v for k, v in sorted(data.items()) if _literal(v)}
        lines.append(f"    # {' '.join(why.split())}")
        lines.extend(f"    # data {k!r} left out: not a plain value" for k in sorted(data)
                     if k not in kept)  # fmt: skip
        lines.append(f"    ({name!r}, {kept!r}),")
    return "\n".join([*lines, "]", ""])


def write_rerun(path: Path, hosts: list[tuple[str, dict[str, Any], str]]) -> Path | None:
    """Write the re-run inventory (atomically); with no hosts, remove a stale one. Its path
    or None.

    + path: where (``rerun_path``)
    + hosts: (name, data, why) of the failed and unreached hosts
    """
    if not hosts:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return None
    write_atomic(path, rerun_text(hosts).encode())
    return path
