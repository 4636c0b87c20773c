"""Does verify show the win where there is one? The issue's three hosts, as JSON.

Three sandbox hosts (root required), one developer user each, ``gotune apply`` (which
records the user's setup first: the baseline), then ``gotune verify --json``:

- ``slow9p``: the user's GOCACHE and GOMODCACHE on a 9p-like /mnt/c (tests/slowfs.py,
  ``--latency-ms`` per metadata operation, WSL2's 0.1-1 ms); apply moves them home.
  verify: the repeat build and the generated service's no-op build. Target: before ÷
  tuned ≥ 5× for the service, the repeat-build target met by tuned and missed by before.
- ``hdd``: the user's home on a throttled HDD (120 IOPS), GOCACHE on Go's default there;
  apply puts it on a tmpfs (saved to disk, restored at boot). ``verify --cold``: the page
  cache dropped before every run. Target: ≥ 5× for the service's no-op build.
- ``fast``: this machine's disk, GOCACHE on a tmpfs: "no measurable difference", with
  the reason; and the wall time of a full default verify once its caches are warm
  (target < 90 s per host; the first run, which compiles every variant's caches, is
  reported too).

Every figure is a median of ``--runs`` interleaved runs (tuned, before, default in
turn), ratios from the same run. The generated service has ``--packages`` packages
(200, the default verify builds).

    .venv/bin/python bench/verify_win.py [--runs 5] [--packages 200] [--latency-ms 0.5]
        [--hosts slow9p,hdd,fast] [--report DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gotune.agent.verify.bench import GENERATED  # noqa: E402
from tests import sandbox_storage  # noqa: E402
from tests.sandbox import Sandbox, SandboxHost, missing_requirement  # noqa: E402
from tests.sandbox_storage import Hdd, Slow9p  # noqa: E402

USER = "dev"
MNT_C_HOME = "/mnt/c/Users/dev"
SETTINGS: dict[str, dict[str, Any]] = {
    "slow9p": {"gotune_users": [USER], "gotune_gocache_tmpfs": "never"},
    "hdd": {"gotune_users": [USER], "gotune_gocache_tmpfs": "always", "gotune_tmpfs_max_gib": 2},
    "fast": {"gotune_users": [USER], "gotune_gocache_tmpfs": "always", "gotune_tmpfs_max_gib": 2},
}


def sh(host: SandboxHost, cmd: str, user: str = "root") -> str:
    out = host.run(cmd, user=user, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"{host.name}: {cmd}: {out.stderr.strip()[-800:]}")
    return out.stdout


def gotune(inventory: Path, *args: str) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "gotune", args[0], str(inventory), "--json",
                          *args[1:]], capture_output=True, text=True, cwd=REPO, timeout=7200)
    wall = time.perf_counter() - start
    try:
        return round(wall, 1), json.loads(out.stdout)
    except ValueError:
        raise SystemExit(f"gotune {args[0]} printed no JSON: {out.stderr.strip()[-500:]}") from None


def figures(b: dict[str, Any]) -> dict[str, Any]:
    """One benchmark's figures: each variant's median, range and runs, ratios, verdicts."""
    row: dict[str, Any] = {k: b.get(k) for k in (
        "name", "target_s", "ratio", "headline_ratio", "verdict", "verdicts", "target_met",
        "targets_met", "explanation", "error", "cold")}
    for key in ("tuned", "before", "default"):
        s = b.get(key) or {}
        row[key] = {k: s.get(k) for k in ("median_s", "min_s", "max_s", "runs")} if s else None
    return {k: v for k, v in row.items() if v is not None}


def summary(host: SandboxHost, result: dict[str, Any], wall: float) -> dict[str, Any]:
    h = result["hosts"][host.name]
    return {
        "verify_wall_s": wall, "verdict": h["verdict"], "headline": h.get("headline"),
        "variants": {k: v.get("summary") for k, v in (h.get("variants") or {}).items()},
        "failed_checks": [c["name"] for c in h["checks"] if not c["ok"]],
        "benchmarks": [figures(b) for b in h["benchmarks"]],
        "workload": {k: (h.get("workload") or {}).get(k) for k in ("packages", "files",
                                                                   "bytes", "modules")},
    }


def report_flag(report: str | None, name: str) -> list[str]:
    return ["--report", str(Path(report) / name)] if report else []


def slow9p(host: SandboxHost, inv: Path, common: list[str], report: str | None) -> dict[str, Any]:
    goenv = (f"GOCACHE={MNT_C_HOME}/AppData/go-build\nGOMODCACHE={MNT_C_HOME}/go/pkg/mod\n"
             "GOTOOLCHAIN=local\n")
    sh(host, f"mkdir -p {MNT_C_HOME}/AppData/go-build {MNT_C_HOME}/go/pkg/mod ~/.config/go && "
             f"printf %s {shlex.quote(goenv)} > ~/.config/go/env", user=USER)  # fmt: skip
    _wall, applied = gotune(inv, "apply", "--yes", "--no-verify")
    if not applied["hosts"][host.name].get("ok"):
        raise SystemExit(f"apply failed: {applied}")
    wall, result = gotune(inv, "verify", "--bench", f"repeat build,{GENERATED}", *common,
                          *report_flag(report, "slow9p"))
    return summary(host, result, wall)


def hdd(host: SandboxHost, inv: Path, common: list[str], report: str | None) -> dict[str, Any]:
    _wall, applied = gotune(inv, "apply", "--yes", "--no-verify")
    if not applied["hosts"][host.name].get("ok"):
        raise SystemExit(f"apply failed: {applied}")
    wall, result = gotune(inv, "verify", "--bench", GENERATED, "--cold", *common,
                          *report_flag(report, "hdd"))
    return summary(host, result, wall)


def fast(host: SandboxHost, inv: Path, common: list[str], report: str | None) -> dict[str, Any]:
    _wall, applied = gotune(inv, "apply", "--yes", "--no-verify")
    if not applied["hosts"][host.name].get("ok"):
        raise SystemExit(f"apply failed: {applied}")
    first, _result = gotune(inv, "verify", *common)  # compiles every variant's caches
    wall, result = gotune(inv, "verify", *common, *report_flag(report, "fast"))
    return {"first_verify_wall_s": first} | summary(host, result, wall)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="runs per variant (medians)")
    p.add_argument("--packages", type=int, default=200, help="the generated service's size")
    p.add_argument("--latency-ms", type=float, default=0.5, help="slow9p ms per metadata op")
    p.add_argument("--hosts", default="slow9p,hdd,fast", help="which hosts to measure")
    p.add_argument("--report", metavar="DIR", help="each host's HTML report under DIR")
    args = p.parse_args()
    wanted = args.hosts.split(",")
    storage: dict[str, Any] = {"slow9p": [Slow9p(latency_ms=args.latency_ms)],
                               "hdd": [Hdd(path="/home")], "fast": None}
    reason = missing_requirement() or sandbox_storage.missing_requirement(
        [s for n in wanted for s in storage[n] or []])
    if reason:
        raise SystemExit(reason)
    common = ["--runs", str(args.runs), "--workload-packages", str(args.packages)]
    out: dict[str, Any] = {"runs": args.runs, "packages": args.packages,
                           "latency_ms": args.latency_ms, "cpus": len(os.sched_getaffinity(0)),
                           "hosts": {}}
    started = time.monotonic()
    steps = {"slow9p": slow9p, "hdd": hdd, "fast": fast}
    for name in wanted:  # one host at a time: they share this machine's CPUs and disk
        with Sandbox(1, data=[SETTINGS[name]], storage=[storage[name]]) as box:
            host = box.hosts[0]
            host.add_user(USER)
            host.link_go()
            out["hosts"][name] = steps[name](host, box.inventory, common, args.report)
            out["hosts"][name]["load_average"] = os.getloadavg()
    out["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
