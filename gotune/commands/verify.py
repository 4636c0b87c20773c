"""``gotune verify [INVENTORY] [--json] [--report DIR] [--thorough] [--cold] [--project DIR]``.

Validates every host's settings, connects, runs the verify runner on each host
(``gotune.verify.run``), prints JSON or a table, writes the HTML report when
asked, and exits 1 when any host fails (or cannot be reached).
"""

from __future__ import annotations

import argparse
import json

from gotune.agent.stats import MAX_RUNS
from gotune.agent.verify.bench import BENCHMARKS
from gotune.agent.verify.workload import MAX_WORKLOAD_PACKAGES
from gotune.errors import GotuneError, UsageError
from gotune.verify import Workloads


def bench_list(spec: str | None) -> list[str] | None:
    """``--bench LIST``: benchmark names (None: the standard set; []: ``none``, checks only)."""
    if spec is None:
        return None
    if spec.strip() == "none":
        return []
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise UsageError(f"--bench: unknown benchmark {unknown[0]!r} "
                         f"(known: {', '.join(BENCHMARKS)}, or 'none')")
    return names


def checked_runs(runs: int | None) -> int | None:
    """``--runs N``: N when it is in range (None: each benchmark's default)."""
    if runs is not None and not 1 <= runs <= MAX_RUNS:
        raise UsageError(f"--runs must be between 1 and {MAX_RUNS}")
    return runs


def workloads(args: argparse.Namespace) -> Workloads:
    """--project DIR (absolute: it names a directory on the host), --cold, --workload-packages."""
    dirs = [str(d) for d in getattr(args, "project", None) or []]
    relative = [d for d in dirs if not d.startswith("/")]
    if relative:
        raise UsageError(f"--project {relative[0]}: give the absolute path of the directory "
                         "on the host")
    packages = getattr(args, "workload_packages", None)
    if packages is not None and not 1 <= packages <= MAX_WORKLOAD_PACKAGES:
        raise UsageError(f"--workload-packages must be between 1 and {MAX_WORKLOAD_PACKAGES}")
    return Workloads(projects=tuple(dirs), cold=bool(getattr(args, "cold", False)),
                     workload_packages=packages)


def run(args: argparse.Namespace) -> int:
    from gotune.inventory import connect, validated
    from gotune.verify import run as verify_hosts
    from gotune.verify.html import write_report
    from gotune.verify.table import render

    runs = checked_runs(getattr(args, "runs", None))
    benchmarks = bench_list(getattr(args, "bench", None))
    wanted = workloads(args)
    # Bad settings: nothing runs anywhere.
    inventory, settings = validated(args.inventory, args.user)
    with connect(inventory) as conn:
        users = {name: list(s.users) for name, s in settings.items()}
        result = verify_hosts(conn.hosts, thorough=args.thorough, runs=runs,
                              benchmarks=benchmarks, users=users, workloads=wanted)
        for name, why in conn.unreachable.items():
            result["hosts"][name] = {
                "verdict": "fail",
                "checks": [{"name": "reachable", "ok": False, "detail": why}],
                "benchmarks": [], "diagnosis": [], "history": []}
    if args.report:
        try:
            result["report"] = str(write_report(result, args.report))
        except OSError as exc:
            raise GotuneError(f"cannot write the report to {args.report}: {exc.strerror}") from exc
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(render(result), end="")
    failed = any(h.get("verdict") != "pass" for h in result["hosts"].values())
    return 1 if failed else 0
