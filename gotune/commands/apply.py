"""``gotune apply [INVENTORY] [--dry] [--yes] [--json] [--no-verify]``: make hosts match the plan.

Every host's settings are validated before any host is contacted; each host's
facts are gathered (one command) and its plan made; a host that is not root
(``id -u``, never ``$USER``) stops the run before any host changes; the laptop
deploy is prepared on every host (the operations that would change something
found) before any host is changed; the plan's decisions with their reasons and
the changes are shown and, unless ``--yes``, confirmed on a terminal; then the
operations run, and ``gotune verify`` checks the result.

Exit status (also in the README): 0 every host applied and verified; 1 a host
was not reached, not root, or its apply failed (nothing else is verified then);
2 the command line is wrong; 4 every host applied but verify failed on one.
Each host's result is ``{"changed": N, "ok": bool, ...}``; a second apply
reports ``changed: 0``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from gotune.errors import GotuneError
from gotune.plan.model import HostPlan

if TYPE_CHECKING:
    from gotune.inventory import Connection
    from gotune.settings import Settings

# Seconds allowed for the verify step at the end of apply.
VERIFY_TIMEOUT_S = 1800
# apply's exit status when every host changed as planned but verify failed on one.
EXIT_VERIFY_FAILED = 4


# A host pyinfra fails without an operation's error (a fact it cannot load).
NOT_RUN = "stopped before its operations ran"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HOST_PREFIX = re.compile(r"\[([^\]\s]+)\]\s*")
# What an operation that went on says it left undone ("gotune undo: dev could not put back
# ..."): the report's "warnings", so --json users see it too.
WARNING = re.compile(r"\s*gotune( \w+)?: ")


class HostErrors(logging.Handler):
    """The error lines pyinfra logs, by host name ("[sbx1] Error: could not load fact:
    pacman.PacmanPackages"): what explains a host it fails while preparing."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: dict[str, list[str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        text = _ANSI.sub("", record.getMessage())
        prefix = _HOST_PREFIX.match(text)
        if prefix and text[prefix.end() :].strip():
            self.lines.setdefault(prefix[1], []).append(" ".join(text[prefix.end() :].split()))

    def why(self, name: str) -> str:
        """A host's last error lines, one line (the failed command's output comes first)."""
        return "; ".join(self.lines.get(name, [])[-3:]) or NOT_RUN


@contextlib.contextmanager
def quiet() -> Iterator[HostErrors]:
    """Keep pyinfra's log and progress output off the terminal and stdout (which belongs to
    --json); its error lines are collected per host instead."""
    log = logging.getLogger("pyinfra")  # every pyinfra module logs through this one
    errors = HostErrors()
    level, propagate = log.level, log.propagate
    log.addHandler(errors)  # its only handler, and no other above it: nothing is printed
    log.setLevel(logging.ERROR)
    log.propagate = False
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield errors
    finally:
        log.setLevel(level)
        log.propagate = propagate
        log.removeHandler(errors)


def _unwrap(exc: BaseException) -> BaseException:
    inner = getattr(exc, "exception", None)
    return inner if isinstance(inner, BaseException) else exc


def prepare(state: Any, loader: Callable[[], None]) -> dict[str, str]:
    """Run the deploy's prepare phase on every host; errors become one line.

    Returns the hosts pyinfra failed while preparing (a fact that could not load), with
    why; when that was every host, raises with each one's reason.
    """
    from pyinfra.api.exceptions import PyinfraError

    before = set(state.failed_hosts)
    errors = HostErrors()
    try:
        with quiet() as errors:
            loader()
    except Exception as exc:
        inner = _unwrap(exc)
        if isinstance(inner, GotuneError):
            raise inner from None
        lost = "; ".join(f"{h.name}: {errors.why(h.name)}" for h in state.failed_hosts - before)
        text = str(inner) if isinstance(inner, PyinfraError | OSError) else (
            f"{type(inner).__name__}: {inner}")
        if lost and not state.active_hosts:  # pyinfra's "No hosts remaining!": say why
            text = lost
        elif lost:
            text += f" (and {lost})"
        raise GotuneError(f"nothing changed: {text}") from None
    return {h.name: errors.why(h.name) for h in state.failed_hosts - before}


def proposed(state: Any) -> dict[str, list[str]]:
    """Host name -> names of the operations that would change something (pyinfra's public
    ``OperationMeta.will_change``, which reads the current host from its context)."""
    from pyinfra.context import ctx_host

    out: dict[str, list[str]] = {}
    for host in state.inventory.iter_activated_hosts():
        if host not in state.active_hosts:  # failed while preparing: nothing of it will run
            continue
        with ctx_host.use(host):
            out[host.name] = [
                _op_name(state, op_hash)
                for op_hash in state.get_op_order()
                if (op := state.ops[host].get(op_hash)) is not None
                and op.operation_meta.will_change
            ]
    return out


def _op_name(state: Any, op_hash: str) -> str:
    names = state.op_meta[op_hash].names
    return ", ".join(sorted(names)) if names else op_hash


def results(
    state: Any, run_error: str | None = None, reasons: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Host name -> {changed, ok, operations, error} after the run.

    + run_error: what stopped the run (an operation that raised); hosts with
      operations that never completed failed with it
    + reasons: why a host failed before the run (``prepare``), for hosts with no error
      of an operation
    """
    out: dict[str, dict[str, Any]] = {}
    failed = {h.name for h in state.failed_hosts}
    for host in state.inventory:
        if host not in state.activated_hosts:
            continue
        changed: list[str] = []
        warnings: list[str] = []
        # A host failed before the run (while preparing) ran nothing: that is its error.
        error = (reasons or {}).get(host.name)
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
            if meta.did_succeed():
                warnings += [ln.strip() for ln in meta.stderr_lines if WARNING.match(ln)]
            if meta.did_error() and error is None:
                err = [ln for ln in meta.stderr_lines if ln.strip()]
                error = f"{_op_name(state, op_hash)}: " + (err[-1] if err else "failed")
        ok = host.name not in failed and error is None
        entry: dict[str, Any] = {
            "changed": len(changed), "ok": ok, "operations": changed, "warnings": warnings,
        }  # fmt: skip
        if error or not ok:
            entry["error"] = error or NOT_RUN
        out[host.name] = entry
    return out


def failed_entries(why: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Report entries for hosts that were not reached or not planned."""
    return {
        name: {"changed": 0, "ok": False, "operations": [], "error": reason}
        for name, reason in why.items()
    }


def prepared_entry(name: str, lost: dict[str, str], **fields: Any) -> dict[str, Any]:
    """The report entry of a host whose operations were prepared, before they run (``lost``:
    the hosts pyinfra failed while preparing, with why)."""
    why = {"error": lost[name]} if name in lost else {}
    return {"changed": 0, "ok": name not in lost, "operations": [], **fields, **why}


def confirm(changes: dict[str, list[str]], yes: bool, question: str) -> bool:
    """Ask y/N on a terminal; without one, --yes is required."""
    if yes or not any(changes.values()):
        return True
    if not sys.stdin.isatty():
        raise GotuneError("changes need confirmation: run with --yes (stdin is not a terminal)")
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")


def show(changes: dict[str, list[str]]) -> str:
    lines = []
    for host, names in changes.items():
        lines.append(f"{host}: {len(names)} change(s)" if names else f"{host}: nothing to change")
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
    except Exception as exc:  # an operation on one host raised what pyinfra did not expect
        inner = _unwrap(exc)
        return f"{type(inner).__name__}: {inner}".rstrip(": ")
    return None


def confirm_and_execute(
    state: Any, changes: dict[str, list[str]], yes: bool, report: dict[str, Any], question: str
) -> bool:
    """Ask, then run the prepared operations and merge each host's result into
    ``report["hosts"]``; False (nothing changed) when the user says no."""
    if not confirm(changes, yes, question):
        print("gotune: nothing changed", file=sys.stderr)
        return False
    if any(changes.values()):
        stopped = execute(state)
        reasons = {n: e["error"] for n, e in report["hosts"].items() if e.get("error")}
        for name, result in results(state, stopped, reasons).items():
            entry = report["hosts"].setdefault(name, {})
            said = entry.get("warnings", []) + result.pop("warnings")  # the plan's, then the run's
            entry.update(result, warnings=said)
    return True


def run_verify(inventory: str | None, user: str | None = None) -> dict[str, Any]:
    """Run ``gotune verify --json`` in a child process (pyinfra state is per process),
    for the developer ``user`` (``--user``) where apply had one."""
    argv = [sys.executable, "-m", "gotune", "verify", "--json"]
    if inventory:
        argv.insert(4, inventory)
    if user:
        argv += ["--user", user]
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


def verify_summary(verify: dict[str, Any]) -> list[str]:
    """One line per host: verify's verdict and, when it failed, the first cause."""
    if "skipped" in verify:
        return [f"verify: skipped ({verify['skipped']})"]
    if verify.get("error"):
        return [f"verify: failed: {verify['error']}"]
    lines = []
    for name, h in (verify.get("hosts") or {}).items():
        line = f"{name}: verify {str(h.get('verdict', '?')).upper()}"
        if h.get("verdict") != "pass":
            line += f": {_first_failure(h)}"
            cause = next(iter(h.get("diagnosis") or []), None)
            if cause and cause["cause"] != "unknown":
                line += f" (cause: {cause['cause']}: {cause['detail']})"
        lines.append(line)
    return lines


def _first_failure(host: dict[str, Any]) -> str:
    """What failed first on a host: a check, else a benchmark (its error or missed target)."""
    bad = next((c for c in host.get("checks", []) if not c.get("ok")), None)
    if bad:
        return f"{bad['name']}: {bad['detail']}"
    for b in host.get("benchmarks", []):
        if b.get("error"):
            return f"benchmark {b['name']}: {b['error']}"
        if b.get("target_met") is False:
            median = (b.get("tuned") or {}).get("median_s")
            return f"benchmark {b['name']}: {median} s, target {b.get('target_s')} s"
        if b.get("verdict") == "slower":
            return f"benchmark {b['name']}: slower than Go's defaults (ratio {b.get('ratio')})"
    return "see `gotune verify`"


def _tune_each(plans: dict[str, HostPlan]) -> None:
    from pyinfra import host

    from gotune.deploys.laptop import tune

    tune(hp=plans[host.name])


@dataclass
class Applied:
    """What ``apply_hosts`` did: the report ``gotune apply --json`` prints, and the plans.

    + report: ``{"hosts": {NAME: {"changed", "ok", "operations", ...}}}`` (``"dry": True``
      when nothing ran)
    + plans: each planned host's facts, settings and plan
    + confirmed: False when the user said no (nothing changed)
    """

    report: dict[str, Any]
    plans: dict[str, HostPlan] = field(default_factory=dict)
    confirmed: bool = True


def apply_hosts(
    conn: Connection, settings: dict[str, Settings], *, yes: bool, dry: bool = False,
    show_to: TextIO | None = None, strict: bool = True,
) -> Applied:
    """Make the connected hosts match their plans, all at once: gather facts and plan
    (one command per host), check root, prepare the deploy on every host, confirm, run.

    + conn: the connected hosts (unreachable ones are reported as failed)
    + settings: every host's validated settings
    + yes: do not ask before changing anything
    + dry: stop after showing what would change
    + show_to: where to print the plans and changes for people (None: nowhere)
    + strict: a host that is not root, or whose settings name a missing user, stops
      every host before any change (apply); False fails only that host (rollout)
    """
    from pyinfra_cli.util import load_func

    from gotune.commands.plan import render_text
    from gotune.operations import control
    from gotune.planning import host_plans, not_root

    plans, failed = host_plans(conn, settings, strict=strict)
    failed.update(conn.unreachable)
    refused = not_root(plans)
    if refused and strict and not dry:
        name, why = next(iter(refused.items()))
        raise GotuneError(f"{name}: {why}; nothing changed on any host")
    for name in refused if not dry else ():  # a dry run still shows what they would change
        failed[name] = refused[name]
        del plans[name]
    if failed:  # never deployed: they count as failed, the others go on
        conn.state.fail_hosts({h for h in conn.hosts if h.name in failed})
    applied = Applied({"hosts": failed_entries(failed)}, plans)
    conn.state.check_for_changes = True
    with control.dry_run(dry):
        lost = prepare(conn.state, lambda: load_func(conn.state, _tune_each, plans))
    changes = proposed(conn.state)
    for name, hp in plans.items():
        applied.report["hosts"][name] = prepared_entry(
            name, lost, would_change=changes.get(name, []), plan=hp.plan.to_dict(),
            warnings=list(hp.plan.warnings),
        )  # fmt: skip
    if dry:  # what the real run would refuse, beside what it would change
        for name, why in refused.items():
            applied.report["hosts"][name]["would_refuse"] = why
    if show_to is not None:
        text = render_text({n: hp.plan for n, hp in plans.items()}) + "\n" + show(changes)
        if dry:
            text += "".join(f"\n{name}: apply would refuse: {why}" for name, why in refused.items())
        print(text, file=show_to)
    if dry:
        applied.report["dry"] = True
        return applied
    question = "Make these changes?"
    applied.confirmed = confirm_and_execute(conn.state, changes, yes, applied.report, question)
    return applied


def run(args: argparse.Namespace) -> int:
    from gotune.inventory import connect, validated

    os.environ.setdefault("PYINFRA_PROGRESS", "off")
    # Every host's settings before any host is contacted.
    inventory, settings = validated(args.inventory, args.user)
    with connect(inventory) as conn:
        show_to = sys.stderr if args.json else sys.stdout
        applied = apply_hosts(conn, settings, yes=args.yes, dry=args.dry,
                              show_to=show_to if not args.json or args.dry else None)
        report = applied.report
        if args.dry:
            if args.json:
                print(json.dumps(report, indent=2))
            # as a real run: 1 when a host was not reached, had no plan or would be refused
            return 0 if all(h.get("ok") and not h.get("would_refuse")
                            for h in report["hosts"].values()) else 1
        if not applied.confirmed:
            return 1
    ok = all(h.get("ok") for h in report["hosts"].values())
    if args.no_verify:
        report["verify"] = {"skipped": "--no-verify"}
    elif not ok:
        bad = ", ".join(n for n, h in report["hosts"].items() if not h.get("ok"))
        report["verify"] = {"skipped": f"apply failed on {bad}"}
    else:
        report["verify"] = run_verify(args.inventory, args.user)
    verified = bool(report["verify"].get("ok", True))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, h in report["hosts"].items():
            status = "ok" if h.get("ok") else f"FAILED: {h.get('error')}"
            print(f"{name}: {h.get('changed', 0)} changed, {status}")
        print("\n".join(verify_summary(report["verify"])))
    if not ok:
        return 1
    return 0 if verified else EXIT_VERIFY_FAILED
