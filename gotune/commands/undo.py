"""``gotune undo [INVENTORY] [--yes] [--json]``: restore what gotune changed.

Each host's undo records (``/var/lib/gotune/undo``, see ``operations/state.py``)
are read with its facts (one command), listed, and, once confirmed, replayed:
units stopped, tmpfs unmounted, caches moved back (never deleted), files
restored to their previous content or removed when gotune created them; then
the records are removed. A host with no records is left alone. Like apply, undo
needs root on every host (``id -u``) before it touches any.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

from gotune.commands.apply import (
    confirm_and_execute,
    failed_entries,
    prepare,
    prepared_entry,
    proposed,
    show,
)
from gotune.errors import GotuneError
from gotune.facts.model import UndoRecord

if TYPE_CHECKING:
    from gotune.inventory import Connection


def describe(rec: UndoRecord) -> dict[str, Any]:
    """What an undo record restores, for the report and the prompt."""
    return {
        "files": sorted(rec.files),
        "moves": [
            {"user": m.user, "key": m.key, "back_to": m.src, "from": m.dst} for m in rec.moves
        ],
        "created": list(rec.created),
        "dirs": list(rec.dirs),
        "mounts": list(rec.mounts),
        "units": list(rec.units),
        "packages": [f"{p.package} ({p.tool})" for p in rec.packages],
        "users": list(rec.users),
    }


def listing(name: str, rec: UndoRecord) -> list[str]:
    """Lines for people: what undo will put back on one host."""
    if rec.empty():
        return [f"{name}: nothing recorded: gotune changed nothing here"]
    lines = [f"{name}: restores"]
    lines += [f"  unit      {u} (stopped and disabled)" for u in rec.units]
    lines += [f"  mount     {m} (unmounted)" for m in rec.mounts]
    lines += [f"  move      {m.user}'s {m.key} back from {m.dst} to {m.src}" for m in rec.moves]
    lines += [f"  file      {path} ({'restored' if existed else 'removed: gotune made it'})"
              for path, existed in sorted(rec.files.items())]  # fmt: skip
    lines += [f"  directory {path} (removed: gotune made it)" for path in rec.created]
    lines += [f"  directory {path} (removed if empty: gotune made it)" for path in rec.dirs]
    lines += [f"  package   {p.package} (removed with {p.tool})" for p in rec.packages]
    lines += [f"  user      {u} (removed: gotune made it for a service)" for u in rec.users]
    return lines


def _restore(records: dict[str, UndoRecord]) -> None:
    from pyinfra import host

    from gotune.operations import undo

    undo.restore(name="restore what gotune changed", record=records[host.name])


def undo_hosts(conn: Connection, *, yes: bool, show_to: TextIO | None = None) -> dict[str, Any]:
    """Restore what gotune changed on the connected hosts, all at once; the report
    ``gotune undo --json`` prints (``"confirmed": False`` when the user said no).

    + conn: the connected hosts (unreachable ones are reported as failed)
    + yes: do not ask before changing anything
    + show_to: where to list what each host restores, for people (None: nowhere)
    """
    from pyinfra_cli.util import load_func

    from gotune.facts.gather import COLLECT_TIMEOUT_S
    from gotune.facts.machine import Machine
    from gotune.inventory import describe_error

    facts, errors = conn.each(
        lambda h: h.get_fact(Machine, _timeout=COLLECT_TIMEOUT_S), COLLECT_TIMEOUT_S + 30
    )
    failed = {name: describe_error(exc) for name, exc in errors.items()}
    failed.update(conn.unreachable)
    refused = {n: f.connected_uid for n, f in facts.items() if f.connected_uid != 0}
    if refused:
        name, uid = next(iter(refused.items()))
        raise GotuneError(f"{name}: undo needs root there (connected as uid {uid}): run "
                          "gotune as root (or with sudo); nothing changed on any host")
    if failed:
        conn.state.fail_hosts({h for h in conn.hosts if h.name in failed})
    records = {name: f.gotune.undo for name, f in facts.items()}
    conn.state.check_for_changes = True
    lost = prepare(conn.state, lambda: load_func(conn.state, _restore, records))
    changes = proposed(conn.state)
    report: dict[str, Any] = {"hosts": failed_entries(failed)}
    for name, rec in records.items():
        report["hosts"][name] = prepared_entry(name, lost, restores=describe(rec))
    if show_to is not None:
        print("\n".join(line for n, r in records.items() for line in listing(n, r)), file=show_to)
        print(show(changes), file=show_to)
    question = "Restore all of this?"
    if not confirm_and_execute(conn.state, changes, yes, report, question):
        report["confirmed"] = False
    return report


def run(args: argparse.Namespace) -> int:
    from gotune.inventory import connected

    os.environ.setdefault("PYINFRA_PROGRESS", "off")
    with connected(args.inventory) as conn:
        report = undo_hosts(conn, yes=args.yes, show_to=None if args.json else sys.stdout)
        if report.pop("confirmed", True) is False:
            return 1
    ok = all(h.get("ok") for h in report["hosts"].values())
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, h in report["hosts"].items():
            status = "ok" if h.get("ok") else f"FAILED: {h.get('error')}"
            print(f"{name}: {h.get('changed', 0)} restored, {status}")
            for warning in h.get("warnings", []):
                print(f"  {warning}")
    return 0 if ok else 1
