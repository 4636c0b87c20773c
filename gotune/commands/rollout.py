"""``gotune rollout INVENTORY [--waves 1,10%,100%] [--max-fail N|P%] [--gate fail|slower]
[--state FILE] [--resume] [--keep-failed] [--user NAME] [--bench LIST] [--runs N]
[--project DIR] [--cold] [--workload-packages N] [--parallel N] [--dry] [--yes] [--json]
[--report DIR]``: roll the setup out to a fleet in waves.

Every host's settings are validated and the waves worked out before any host is
contacted; then wave after wave is applied, verified and gated (``gotune.rollout.run``),
each host's outcome saved in the state file as it is known. ``--resume`` continues a
rollout that halted or was stopped, skipping the hosts that passed with the same
settings, and any rollout that ends with failed or unreached hosts lists them in a
pyinfra inventory file to re-run.

Exit status (also in the README): 0 every host passed; 1 the rollout halted, was
interrupted, or a host failed within the budget; 2 the command line is wrong (a wave
list, a budget, a state file of another inventory).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from gotune.errors import UsageError

# ``--parallel`` above this would exhaust the control machine's file descriptors
# (pyinfra's own advice: about three per host).
MAX_PARALLEL = 1000


def _options(args: argparse.Namespace, saved: dict[str, Any] | None) -> dict[str, str]:
    """waves, max_fail, gate: as given, else as the resumed rollout had them, else defaults."""
    from gotune.rollout.gate import DEFAULT_GATE
    from gotune.rollout.waves import DEFAULT_MAX_FAIL, DEFAULT_WAVES

    defaults = {"waves": DEFAULT_WAVES, "max_fail": DEFAULT_MAX_FAIL, "gate": DEFAULT_GATE}
    return {key: getattr(args, key) or (saved or {}).get(key) or default
            for key, default in defaults.items()}  # fmt: skip


def _show_waves(waves: list[list[str]], todo: set[str], out: TextIO) -> None:
    for i, names in enumerate(waves, start=1):
        left = [n for n in names if n in todo]
        label = " (canary)" if i == 1 else ""
        skipped = f", {len(names) - len(left)} passed before" if len(left) < len(names) else ""
        shown = ", ".join(left) if len(left) <= 8 else ", ".join(left[:8]) + ", …"
        print(f"wave {i}{label}: {len(left)} host(s){skipped}: {shown or '-'}", file=out)


def run(args: argparse.Namespace) -> int:
    from gotune.commands.apply import confirm
    from gotune.commands.verify import bench_list, checked_runs, workloads
    from gotune.inventory import load_inventory
    from gotune.rollout import state as st
    from gotune.rollout.result import closing, phase_line, table, wave_line
    from gotune.rollout.run import Options, Rollout
    from gotune.rollout.waves import parse_budget, parse_waves, serving_first, split
    from gotune.settings import validate_inventory

    os.environ.setdefault("PYINFRA_PROGRESS", "off")
    runs, benchmarks = checked_runs(args.runs), bench_list(args.bench)
    wanted = workloads(args)
    if args.parallel is not None and not 1 <= args.parallel <= MAX_PARALLEL:
        raise UsageError(f"--parallel must be between 1 and {MAX_PARALLEL}")
    # A bad wave list or budget is refused before the inventory is even read.
    if args.waves is not None:
        parse_waves(args.waves)
    if args.max_fail is not None:
        parse_budget(args.max_fail, 1)
    inventory = load_inventory(args.inventory)
    # Every host's settings, before any host is contacted.
    settings = validate_inventory(inventory, args.user)
    names = [h.name for h in inventory]
    identity = st.Identity.of(args.inventory, names)
    path = st.default_path(args.inventory) if args.state is None else _state_arg(args.state)
    state = st.read(path, identity, args.resume)
    opts = _options(args, state.doc if state else None)
    waves = split(serving_first(names, settings), parse_waves(opts["waves"]))
    budget = parse_budget(opts["max_fail"], len(names))
    wave_of = {n: i for i, wave in enumerate(waves, start=1) for n in wave}
    digests = {n: settings[n].digest() for n in names}
    if state is None:
        state = st.start(path, identity, wave_of, digests, **opts)
    else:
        _reset_for_resume(state, wave_of, digests, opts)
    todo = {n for n, h in state.hosts.items() if h["outcome"] != st.PASSED}
    out = sys.stderr if args.json else sys.stdout
    if not args.json or args.dry:
        _show_waves(waves, todo, out)
    if args.dry:
        if args.json:
            print(json.dumps({"dry": True, "waves": [
                {"number": i, "hosts": hosts, "todo": [n for n in hosts if n in todo]}
                for i, hosts in enumerate(waves, start=1)]}, indent=2))
        return 0
    if not confirm({"fleet": sorted(todo)}, args.yes, f"Roll out to {len(todo)} host(s)?"):
        print("gotune: nothing changed", file=sys.stderr)
        return 1
    options = Options(gate=opts["gate"], keep_failed=args.keep_failed, benchmarks=benchmarks,
                      runs=runs, workloads=wanted, parallel=args.parallel)  # fmt: skip

    def progress(wave: Any, outcome: Any) -> None:
        print(wave_line(wave, outcome, state), file=out, flush=True)

    def phase(wave: Any, what: str, names: list[str]) -> None:
        print(phase_line(wave, len(waves), what, names), file=out, flush=True)

    outcome = Rollout(inventory, settings, state, waves, budget, options, progress,
                      phase).run()
    doc = _finish(args, inventory, state, outcome)
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print(table(doc))
        print(closing(doc, args.inventory))
        if doc.get("report"):
            print(f"report: {doc['report']}")
    return 0 if all(h["outcome"] == st.PASSED for h in state.hosts.values()) else 1


def _finish(args: argparse.Namespace, inventory: Any, state: Any, outcome: Any) -> dict[str, Any]:
    """The re-run inventory of the failed and unreached hosts (or none), the report when
    asked, and the ``--json`` document naming them."""
    from gotune.rollout.inventory import rerun_path, write_rerun
    from gotune.rollout.result import to_json

    bad = [(n, inventory.get_host(n).data.dict(), _why(state.hosts[n])) for n in state.failed()]
    rerun = write_rerun(rerun_path(state.path), bad)
    doc = to_json(outcome, state, str(rerun) if rerun else None)
    if args.report:
        from gotune.rollout.report import write_report

        doc["report"] = str(write_report(doc, args.report))
    return doc


def _state_arg(spec: str) -> Path:
    path = Path(spec)
    if path.is_dir():
        raise UsageError(f"--state: {spec} is a directory (name a file)")
    return path


def _reset_for_resume(state: Any, wave_of: dict[str, int], digests: dict[str, str],
                      opts: dict[str, str]) -> None:
    """Hosts that passed with the same settings stay passed; every other host is to do
    again (in its wave under the current wave list), its last outcome kept as ``previous``."""
    from gotune.rollout import state as st

    for name, record in state.hosts.items():
        record["wave"] = wave_of[name]
        if record["outcome"] == st.PASSED and record.get("digest") == digests[name]:
            continue
        previous = {k: record.get(k) for k in ("outcome", "gate", "error", "time") if k in record}
        state.hosts[name] = {"wave": wave_of[name], "outcome": st.PENDING,
                             "digest": digests[name], "time": record.get("time"),
                             "previous": previous}  # fmt: skip
    state.doc.update(opts)


def _why(record: dict[str, Any]) -> str:
    reasons = record.get("gate") or [record.get("error") or record["outcome"]]
    return f"{record['outcome']}: {'; '.join(str(r) for r in reasons)}"
