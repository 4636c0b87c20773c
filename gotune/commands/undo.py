"""``gotune undo [INVENTORY] [--yes] [--json]``: restore what gotune changed.

Each host's undo records (``/var/lib/gotune/undo``, see ``operations/state.py``)
are replayed: units stopped, tmpfs unmounted, caches moved back (never deleted),
files restored to their previous content or removed when gotune created them,
then the records are removed. A host with no records is left alone.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from gotune.commands.apply import confirm_and_execute, prepare, proposed, show, unreachable

# Host name -> what its undo records list, for the report.
RECORDS: dict[str, dict[str, Any]] = {}


def _restore() -> None:
    from dataclasses import asdict

    from pyinfra import host

    from gotune.facts.gotune_state import UndoRecords
    from gotune.operations import undo

    rec = host.get_fact(UndoRecords)
    RECORDS[host.name] = {
        "files": sorted(rec.files),
        "moves": [
            {"user": u, "key": k, "back_to": src, "from": dst} for u, k, src, dst in rec.moves
        ],
        **{k: v for k, v in asdict(rec).items() if k in ("created", "mounts", "units", "packages")},
    }
    undo.restore(name="restore what gotune changed")


def run(args: argparse.Namespace) -> int:
    from pyinfra_cli.util import load_func

    from gotune.inventory import connected

    os.environ.setdefault("PYINFRA_PROGRESS", "off")
    with connected(args.inventory) as state:
        state.check_for_changes = True
        prepare(state, lambda: load_func(state, _restore))
        changes = proposed(state)
        report: dict[str, Any] = {
            "hosts": {
                n: {"changed": 0, "ok": True, "operations": [], "restores": RECORDS.get(n)}
                for n in changes
            }
        }
        report["hosts"].update(unreachable(state))
        if not args.json:
            print(show(changes))
        if not confirm_and_execute(state, changes, args.yes, report):
            return 1
    ok = all(h.get("ok") for h in report["hosts"].values())
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, h in report["hosts"].items():
            status = "ok" if h.get("ok") else f"FAILED: {h.get('error')}"
            print(f"{name}: {h.get('changed', 0)} restored, {status}")
    return 0 if ok else 1
