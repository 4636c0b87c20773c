"""``gotune apply [INVENTORY] [--dry] [--yes] [--json] [--no-verify]``: make hosts match the plan.

The flow is pyinfra's own (what ``pyinfra INVENTORY deploys/laptop.py`` does):
every host's settings are validated before any host is contacted; the deploy is
prepared on every host (facts gathered, the plan made, the operations that would
change something found) before any host is changed; the changes are shown and,
unless ``--yes``, confirmed on a terminal; then the operations run. Each host's
result is ``{"changed": N, "ok": bool, ...}``; a second apply reports
``changed: 0``. ``gotune verify`` runs at the end when it is available.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gotune.errors import GotuneError

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
LAPTOP_DEPLOY = REPO_ROOT / "deploys" / "laptop.py"
# Seconds allowed for the verify step at the end of apply.
VERIFY_TIMEOUT_S = 1800


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep pyinfra's progress output off stdout (which belongs to --json)."""
    logging.getLogger("pyinfra").setLevel(logging.CRITICAL)
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _unwrap(exc: BaseException) -> BaseException:
    inner = getattr(exc, "exception", None)
    return inner if isinstance(inner, BaseException) else exc


def prepare(state: Any, loader: Callable[[], None]) -> None:
    """Run the deploy's prepare phase on every host; errors become one line."""
    from pyinfra.api.exceptions import PyinfraError

    try:
        with quiet():
            loader()
    except Exception as exc:
        inner = _unwrap(exc)
        if isinstance(inner, GotuneError):
            raise inner from None
        if isinstance(inner, PyinfraError | OSError):
            raise GotuneError(f"nothing changed: {inner}") from None
        raise GotuneError(f"nothing changed: {type(inner).__name__}: {inner}") from None


def proposed(state: Any) -> dict[str, list[str]]:
    """Host name -> names of the operations that would change something."""
    out: dict[str, list[str]] = {}
    for host in state.inventory.iter_activated_hosts():
        names = []
        for op_hash in state.get_op_order():
            op_data = state.ops[host].get(op_hash)
            if op_data is not None and op_data.operation_meta._maybe_is_change:
                names.append(_op_name(state, op_hash))
        out[host.name] = names
    return out


def _op_name(state: Any, op_hash: str) -> str:
    names = state.op_meta[op_hash].names
    return ", ".join(sorted(names)) if names else op_hash


def results(state: Any, run_error: str | None = None) -> dict[str, dict[str, Any]]:
    """Host name -> {changed, ok, operations, error} after the run.

    + run_error: what stopped the run (an operation that raised); hosts with
      operations that never completed failed with it
    """
    out: dict[str, dict[str, Any]] = {}
    failed = {h.name for h in state.failed_hosts}
    for host in state.inventory:
        changed: list[str] = []
        error = None
        for op_hash in state.get_op_order():
            op_data = state.ops.get(host, {}).get(op_hash)
            if op_data is None:
                continue
            meta = op_data.operation_meta
            if not meta.is_complete():
                if run_error and error is None:
                    error = f"{_op_name(state, op_hash)}: {run_error}"
                continue
            if meta.did_change():
                changed.append(_op_name(state, op_hash))
            if meta.did_error() and error is None:
                err = [ln for ln in meta.stderr_lines if ln.strip()]
                error = f"{_op_name(state, op_hash)}: " + (err[-1] if err else "failed")
        ok = host.name not in failed and error is None and host in state.activated_hosts
        entry: dict[str, Any] = {"changed": len(changed), "ok": ok, "operations": changed}
        if error or not ok:
            entry["error"] = error or "not reached"
        out[host.name] = entry
    return out


def unreachable(state: Any) -> dict[str, dict[str, Any]]:
    """Report entries for the inventory's hosts that could not be connected to."""
    active = {h.name for h in state.activated_hosts}
    return {
        h.name: {"changed": 0, "ok": False, "operations": [], "error": "cannot connect"}
        for h in state.inventory
        if h.name not in active
    }


def confirm(changes: dict[str, list[str]], yes: bool) -> bool:
    """Ask y/N on a terminal; without one, --yes is required."""
    if yes or not any(changes.values()):
        return True
    if not sys.stdin.isatty():
        raise GotuneError("changes need confirmation: run with --yes (stdin is not a terminal)")
    answer = input("Make these changes? [y/N] ").strip().lower()
    return answer in ("y", "yes")


def show(changes: dict[str, list[str]], plans: dict[str, Any] | None = None) -> str:
    lines = []
    for host, names in changes.items():
        lines.append(f"{host}: {len(names)} change(s)" if names else f"{host}: nothing to change")
        if plans and host in plans:
            for d in plans[host].plan.decisions:
                if d.change:
                    who = f"{d.user}: " if d.user else ""
                    lines.append(f"  plan: {who}{d.key} -> {d.value} ({d.reason})")
        lines.extend(f"  - {name}" for name in names)
    return "\n".join(lines)


def execute(state: Any) -> str | None:
    """Run the prepared operations; what stopped the run, if anything did."""
    from pyinfra.api.exceptions import PyinfraError
    from pyinfra.api.operations import run_ops

    try:
        with quiet():
            run_ops(state)
    except PyinfraError as exc:
        return str(_unwrap(exc)) or type(exc).__name__
    return None


def confirm_and_execute(
    state: Any, changes: dict[str, list[str]], yes: bool, report: dict[str, Any]
) -> bool:
    """Ask, then run the prepared operations and merge each host's result into
    ``report["hosts"]``; False (nothing changed) when the user says no."""
    if not confirm(changes, yes):
        print("gotune: nothing changed", file=sys.stderr)
        return False
    if any(changes.values()):
        stopped = execute(state)
        for name, result in results(state, stopped).items():
            report["hosts"].setdefault(name, {}).update(result)
    return True


def run_verify(inventory: str | None, skip: bool) -> dict[str, Any]:
    """Run ``gotune verify --json`` when it exists and was not skipped."""
    if skip:
        return {"skipped": "--no-verify"}
    argv = [sys.executable, "-m", "gotune", "verify", "--json"]
    if inventory:
        argv.insert(4, inventory)
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=VERIFY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"verify took longer than {VERIFY_TIMEOUT_S} s"}
    try:
        data: dict[str, Any] = json.loads(out.stdout)
    except json.JSONDecodeError:
        tail = out.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"ok": False, "error": f"verify exited {out.returncode}: {tail[0]}"}
    data.setdefault("ok", out.returncode == 0)
    return data


def run(args: argparse.Namespace) -> int:
    from pyinfra_cli.util import load_deploy_file

    from gotune.deploys.tune import RUNS
    from gotune.inventory import connected, load_inventory
    from gotune.settings import validate_inventory

    os.environ.setdefault("PYINFRA_PROGRESS", "off")
    validate_inventory(load_inventory(args.inventory))  # every host, before any is contacted
    with connected(args.inventory) as state:
        state.check_for_changes = True
        prepare(state, lambda: load_deploy_file(state, str(LAPTOP_DEPLOY)))
        changes = proposed(state)
        report: dict[str, Any] = {"hosts": {}}
        for name in changes:
            hp = RUNS.get(name)
            report["hosts"][name] = {
                "changed": 0,
                "ok": True,
                "operations": [],
                "would_change": changes[name],
                "plan": hp.plan.to_dict() if hp else None,
                "warnings": (hp.plan.warnings + hp.notes) if hp else [],
            }
        report["hosts"].update(unreachable(state))
        if not args.json or args.dry:
            print(show(changes, RUNS), file=sys.stderr if args.json else sys.stdout)
        if args.dry:
            report["dry"] = True
            if args.json:
                print(json.dumps(report, indent=2))
            return 0
        if not confirm_and_execute(state, changes, args.yes, report):
            return 1
        for name, hp in RUNS.items():
            if name in report["hosts"]:
                report["hosts"][name]["warnings"] = hp.plan.warnings + hp.notes
    ok = all(h.get("ok") for h in report["hosts"].values())
    report["verify"] = run_verify(args.inventory, args.no_verify or not ok)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, h in report["hosts"].items():
            status = "ok" if h.get("ok") else f"FAILED: {h.get('error')}"
            print(f"{name}: {h.get('changed', 0)} changed, {status}")
            for w in h.get("warnings", []):
                print(f"  warning: {w}")
        verify = report["verify"]
        print(f"verify: {verify.get('skipped') or ('ok' if verify.get('ok') else 'failed')}")
    return 0 if ok else 1
