"""Measure the GOCACHEPROG helper on this host; keep it only where it helps.

Apply runs it as root (``gotune buildcache-measure``, ``operations/buildcache.py``) once
the developers' GOENV carries the helper. Every build runs as the developer user, with
Go's defaults (``GOENV=off``) and only the arm's GOCACHE and GOCACHEPROG set, on a
generated module that imports what every program needs first (the runtime, fmt,
strings, sort ...), in a directory inside the user's GOCACHE placement (tmpfs or disk):

- ``cold``: the first build from an empty local cache with the site (the helper asks
  it) against without any helper; ``--cold-runs`` each, interleaved. The helper never
  writes here: what the site holds is what its builders put there.
- ``noop``: a warm no-op build with the helper against without; a warm-up each, then
  ``--pairs`` interleaved pairs (A B, B A, ...).

The helper is kept when the cold build with the site is at least ``MIN_COLD_GAIN``
times faster (medians) with the two arms' ranges apart, and verify's rule does not call
the warm no-op "slower" (``gotune.agent.stats``). A site that held none of the workload's
outputs cannot show anything: the record says ``site_cold`` and the next apply measures
again. With ``--remove-unhelpful`` a helper that is not kept leaves the users' GOENV at
once (``go env -u GOCACHEPROG``, as each user); the next plan then wants it gone too.
The figures go to ``/var/lib/gotune/buildcache.json`` for the plan and the report.

    python3 /opt/gotune/gotune.pyz buildcache-measure --user alice --go /usr/local/go/bin/go \\
        --helper /usr/local/lib/gotune/buildcache/gotune-cacheprog \\
        --site http://10.0.0.5:3001 --helper-sha256 4be1... --remove-unhelpful
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from gotune.agent.fsutil import write_atomic
from gotune.agent.paths import BUILDCACHE_RECORD
from gotune.agent.runas import Account, account, output, run_timed
from gotune.agent.stats import SLOWER, summarize, verdict
from gotune.errors import UsageError

# Three cold builds per arm: each takes tens of seconds without the site on a laptop;
# a gain worth keeping (MIN_COLD_GAIN) shows clearly in three.
DEFAULT_COLD_RUNS = 3
# Seven warm no-op pairs: above verify's minimum runs for a verdict, a few seconds.
DEFAULT_PAIRS = 7
# The cold build with the site must be at least this much faster to keep the helper: below
# it the site saves too little to be worth a process per go command.
MIN_COLD_GAIN = 1.2
RECORD_VERSION = 1
# The workload: what a first build on a new machine spends its time on (the standard
# library's compiled packages), and one package of its own (always built here).
WORKLOAD_IMPORTS = ("fmt", "os", "sort", "strings")
MEASURE_DIR = "gotune-buildcache-measure"


def workload(work: Path, go_version: str) -> Path:
    """A module of one package that imports ``WORKLOAD_IMPORTS``, in ``work``."""
    minor = go_version.removeprefix("go").split(".")[:2]
    (work / "go.mod").write_text(f"module gotune.local/buildcachemeasure\n\ngo {'.'.join(minor)}\n")
    imports = "\n".join(f'\t"{p}"' for p in WORKLOAD_IMPORTS)
    (work / "main.go").write_text(
        f"package main\n\nimport (\n{imports}\n)\n\nfunc main() {{\n"
        "\tnames := strings.Fields(\"gotune build cache measure\")\n\tsort.Strings(names)\n"
        "\tfmt.Fprintln(os.Stdout, strings.Join(names, \" \"))\n}\n"
    )
    return work


def user_dir(path: Path, who: Account) -> None:
    """Make ``path`` and its missing parents, owned by ``who`` (never root's in their cache)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for p in reversed(missing):
        p.mkdir()
        os.chown(p, who.uid, who.gid)


class Arms:
    """The two ways go runs here: with the helper (``helper``) and without (``plain``)."""

    def __init__(self, who: Account, go: str, helper: str, site: str, root: Path) -> None:
        self.who, self.go, self.root = who, go, root
        self.stats = root / "helper-stats.jsonl"
        self.base = {**who.env, "GOENV": "off", "GOTOOLCHAIN": "local", "GOFLAGS": "",
                     "GOPROXY": "off", "GOSUMDB": "off", "GOMODCACHE": str(root / "modcache")}
        self.prog = f"{helper} -site {site}"

    def env(self, arm: str, cache: Path) -> dict[str, str]:
        env = {**self.base, "GOCACHE": str(cache)}
        if arm == "helper":
            env["GOCACHEPROG"] = self.prog
            env["GOTUNE_CACHEPROG_STATS"] = str(self.stats)
        return env

    def fresh(self, name: str) -> Path:
        """An empty directory of the user's (a cache that starts cold)."""
        path = self.root / name
        shutil.rmtree(path, ignore_errors=True)
        user_dir(path, self.who)
        return path

    def build(self, arm: str, cache: Path, work: Path) -> float:
        return run_timed([self.go, "build", "-o", os.devnull, "."], self.who, str(work),
                         self.env(arm, cache))

    def helper_stats(self) -> list[dict[str, Any]]:
        """The helper's stats lines so far (one per go command), then forgets them."""
        try:
            lines = self.stats.read_text().splitlines()
        except FileNotFoundError:
            return []
        self.stats.unlink()
        return [json.loads(line) for line in lines if line.strip()]


def figures(a: list[float], b: list[float], names: tuple[str, str]) -> dict[str, Any]:
    """Medians, ranges and samples of two arms, and ``ratio`` = median b / median a."""
    sa, sb = summarize(a), summarize(b)
    assert sa is not None and sb is not None
    first, second = names
    return {
        f"{first}_s": [round(x, 4) for x in a], f"{second}_s": [round(x, 4) for x in b],
        f"{first}_median_s": round(sa.median_s, 4), f"{second}_median_s": round(sb.median_s, 4),
        "ratio": round(sb.median_s / sa.median_s, 3) if sa.median_s > 0 else None,
        "apart": sa.max_s < sb.min_s or sb.max_s < sa.min_s, "runs": len(a),
    }  # fmt: skip


def measure_cold(arms: Arms, work: Path, runs: int) -> dict[str, Any]:
    """The first build from an empty cache, with the site against without."""
    site: list[float] = []
    plain: list[float] = []
    for i in range(runs):
        order = [("helper", site), ("plain", plain)]
        for arm, sink in order if i % 2 == 0 else reversed(order):
            sink.append(arms.build(arm, arms.fresh(f"cold-{arm}"), work))
    out = figures(site, plain, ("site", "plain"))
    runs_stats = arms.helper_stats()
    out["site_hits"] = statistics.median([s.get("SiteHits", 0) for s in runs_stats] or [0])
    out["gets"] = statistics.median([s.get("Gets", 0) for s in runs_stats] or [0])
    return out


def measure_noop(arms: Arms, work: Path, pairs: int) -> dict[str, Any]:
    """A warm no-op build with the helper against without (same module, warm caches)."""
    caches = {arm: arms.fresh(f"noop-{arm}") for arm in ("helper", "plain")}
    for arm, cache in caches.items():  # warm-up: fills each cache, not counted
        arms.build(arm, cache, work)
    helper: list[float] = []
    plain: list[float] = []
    for i in range(pairs):
        order = [("helper", helper), ("plain", plain)]
        for arm, sink in order if i % 2 == 0 else reversed(order):
            sink.append(arms.build(arm, caches[arm], work))
    arms.helper_stats()
    out = figures(helper, plain, ("helper", "plain"))
    out["ratio"] = (round(out["helper_median_s"] / out["plain_median_s"], 3)
                    if out["plain_median_s"] else None)  # above 1: the helper costs time
    out["verdict"] = verdict(summarize(helper), summarize(plain))
    return out


def judge(cold: dict[str, Any], noop: dict[str, Any]) -> tuple[bool, bool, str]:
    """(keep, site_cold, why) from the figures (see the module docstring)."""
    if not cold.get("site_hits"):
        return False, True, ("the site held none of the workload's outputs (no builder has "
                             "built with this Go yet); apply measures again")
    gain = cold.get("ratio") or 0.0
    if not cold.get("apart") or gain < MIN_COLD_GAIN:
        return False, False, (f"the site made a cold build only {gain:.2f}x faster (needs "
                              f"{MIN_COLD_GAIN}x and ranges apart)")
    if noop.get("verdict") == SLOWER:
        return False, False, f"the helper made a warm no-op build slower ({noop.get('ratio')}x)"
    return True, False, f"a cold build {gain:.1f}x faster, warm builds not slower"


def remove_from_goenv(users: list[str], go: str) -> list[str]:
    """``go env -u GOCACHEPROG`` as each user (their own GOENV file); the ones it failed for."""
    failed = []
    for user in users:
        who = account(user, go)
        try:
            output([go, "env", "-u", "GOCACHEPROG"], who, who.home)
        except (OSError, RuntimeError):
            failed.append(user)
    return failed


def go_env_value(go: str, who: Account, key: str) -> str:
    return output([go, "env", key], who, who.home, {**who.env, "GOTOOLCHAIN": "local"}).strip()


def run(args: argparse.Namespace) -> int:
    """``gotune buildcache-measure``: measure, record, print the record as JSON."""
    if args.cold_runs < 1 or args.pairs < 1:
        raise UsageError("--cold-runs and --pairs must be at least 1")
    who = account(args.user, args.go)
    record: dict[str, Any] = {
        "version": RECORD_VERSION, "helper_sha256": args.helper_sha256, "site": args.site,
        "user": args.user, "measured_at": time.time(),
    }  # fmt: skip
    root: Path | None = None
    try:
        record["go_version"] = go_env_value(args.go, who, "GOVERSION")
        root = Path(go_env_value(args.go, who, "GOCACHE")) / MEASURE_DIR
        shutil.rmtree(root, ignore_errors=True)
        user_dir(root, who)
        arms = Arms(who, args.go, args.helper, args.site, root)
        work = workload(arms.fresh("work"), record["go_version"])
        record["cold"] = measure_cold(arms, work, args.cold_runs)
        record["noop"] = measure_noop(arms, work, args.pairs)
        record["keep"], record["site_cold"], record["why"] = judge(record["cold"], record["noop"])
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        # A helper that cannot even build the workload is not kept.
        record.update({"keep": False, "site_cold": False,
                       "why": f"the measurement failed: {str(exc).splitlines()[0][:300]}"})
    finally:
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
    if not record["keep"] and args.remove_unhelpful:
        users = [u for u in (args.users or args.user).split(",") if u]
        record["removed_from"] = [u for u in users
                                  if u not in remove_from_goenv(users, args.go)]
    write_atomic(args.record, json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(json.dumps(record, sort_keys=True))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The internal command's flags (``gotune.agent.cli``)."""
    p.add_argument("--user", required=True, help="run the builds as this user")
    p.add_argument("--users", help="comma-separated: whose GOENV loses an unhelpful helper")
    p.add_argument("--go", required=True, help="the go binary")
    p.add_argument("--helper", required=True, help="the GOCACHEPROG helper")
    p.add_argument("--site", required=True, help="the team build cache's URL")
    p.add_argument("--helper-sha256", default="", help="the helper's source, for the record")
    p.add_argument("--record", default=BUILDCACHE_RECORD, help="the JSON record to write")
    p.add_argument("--cold-runs", type=int, default=DEFAULT_COLD_RUNS)
    p.add_argument("--pairs", type=int, default=DEFAULT_PAIRS)
    p.add_argument("--remove-unhelpful", action="store_true",
                   help="take GOCACHEPROG out of the users' GOENV when it is not kept")

