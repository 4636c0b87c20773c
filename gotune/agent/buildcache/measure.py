"""Measure the GOCACHEPROG helper on this host; keep it only where it helps.

Apply runs it as root (``gotune buildcache-measure``, ``operations/buildcache.py``) once
the developers' GOENV carries the helper. Every build runs as the developer user, with
Go's defaults (``GOENV=off``) and only the arm's GOCACHE and GOCACHEPROG set; the caches
are fresh directories inside the user's GOCACHE placement (tmpfs or disk).

What is built:

- ``workload``: verify's generated service (``gotune.agent.verify.workload``,
  ``--packages`` packages and a dozen modules from its own GOPROXY tree, downloaded
  once beforehand), ``go build ./...``. It lives at ``BUILDCACHE_MEASURE_ROOT``, the
  same path on every host: go's action IDs for packages outside GOROOT name their
  directory, so only the same tree at the same path finds a builder's outputs.
- ``cmd/go`` (``--cmd-go``): ``go build -o /dev/null cmd/go``, in GOROOT, shared from
  any path.

A builder (``--token-file``) warms the site: one build of each target from an empty
cache with the helper and its token, so the site holds what a new machine's first
build needs (but go's index of each module directory, keyed by its files' mtimes: a
reader indexes its own module cache). It keeps its helper (that is how the site
fills); nothing else is timed.

A reader measures:

- ``cold``: each target from an empty local cache with the site (the helper asks it;
  it never writes) against no helper; ``--cold-runs`` each, interleaved;
- ``noop``: a no-op build of each target with the helper against without, on the warm
  caches the last cold runs left; a warm-up each, then ``--pairs`` pairs (A B, B A ...).

The helper is kept when the workload's cold build with the site is at least
``MIN_COLD_GAIN`` times faster (medians) with the two arms' ranges apart, and verify's
rule (``gotune.agent.stats``) calls no warm no-op "slower". A site that held none of the
workload's outputs, or failed, cannot show anything: the record says ``site_cold``,
the helper stays and the next apply measures again. With ``--remove-unhelpful`` a
helper measured not to help leaves the users' GOENV at once (``go env -u GOCACHEPROG``,
as each user). The figures go to
``/var/lib/gotune/buildcache.json`` for the plan, verify and the report.

    python3 /opt/gotune/gotune.pyz buildcache-measure --user alice --go /usr/local/go/bin/go \\
        --helper /usr/local/lib/gotune/buildcache/gotune-cacheprog \\
        --site http://10.0.0.5:3001 --helper-sha256 4be1... --cmd-go --remove-unhelpful
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gotune.agent.fsutil import write_atomic
from gotune.agent.paths import BUILDCACHE_MEASURE_ROOT, BUILDCACHE_RECORD
from gotune.agent.runas import Account, account, output, run_timed
from gotune.agent.stats import SLOWER, summarize, verdict
from gotune.agent.verify import workload as generated
from gotune.agent.verify.bench import go_line, remove_tree
from gotune.errors import UsageError

# Three cold builds per arm: the one without the site takes a minute or more on a
# laptop; a gain worth keeping (MIN_COLD_GAIN) shows clearly in three.
DEFAULT_COLD_RUNS = 3
# Seven warm no-op pairs: above verify's minimum runs for a verdict, a few seconds.
DEFAULT_PAIRS = 7
# The cold build with the site must be at least this much faster to keep the helper: below
# it the site saves too little to be worth a process per go command.
MIN_COLD_GAIN = 1.2
RECORD_VERSION = 2
# The user's caches for the arms, inside their GOCACHE placement.
MEASURE_DIR = "gotune-buildcache-measure"
WORKLOAD = "workload"
CMD_GO = "cmd/go"


def user_dir(path: Path, who: Account) -> None:
    """Make ``path`` and its missing parents, owned by ``who`` (never root's in their cache)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for p in reversed(missing):
        p.mkdir()
        os.chown(p, who.uid, who.gid)


def own_root(root: Path) -> None:
    """``root`` as a directory of root's (0755), made if missing; RuntimeError when a
    symlink or someone else's directory is there (a shared /var/tmp)."""
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        root.mkdir(mode=0o755, parents=True)
        st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise RuntimeError(f"{root} is not a directory of this agent's own")


class Targets:
    """The workload (and cmd/go) at the shared path, and how each is built."""

    def __init__(self, who: Account, go: str, version: str, packages: int | None,
                 cmd_go: bool, scratch: Path, root: Path = Path(BUILDCACHE_MEASURE_ROOT),
                 ) -> None:
        own_root(root)
        self.root = root
        tree = generated.generate(str(root / WORKLOAD), go_line([version]), packages)
        self.service = str(tree["service"])
        self.info = {k: tree[k] for k in ("packages", "files", "bytes", "modules")}
        self.info["dir"] = self.service
        self.modcache = root / "modcache"
        if self.modcache.exists() and self.modcache.stat().st_uid != who.uid:
            remove_tree(str(self.modcache))  # another user's: go would not write to it
        user_dir(self.modcache, who)
        self.base = {**who.env, "GOENV": "off", "GOTOOLCHAIN": "local", "GOFLAGS": "",
                     "GOSUMDB": "off", "GOWORK": "off", "GOMODCACHE": str(self.modcache)}
        run_timed([go, "mod", "download"], who, self.service,
                  {**self.base, "GOPROXY": f"file://{tree['proxy']}",
                   "GOCACHE": str(scratch)})
        self.names = [WORKLOAD, CMD_GO] if cmd_go else [WORKLOAD]

    def argv(self, go: str, name: str) -> tuple[list[str], str]:
        """(the build command, its directory) of target ``name``."""
        if name == CMD_GO:
            return [go, "build", "-o", os.devnull, "cmd/go"], str(self.root)
        return [go, "build", "./..."], self.service


class Arms:
    """The ways go runs here: with the helper (``helper``), a builder's (``warm``), without
    (``plain``)."""

    def __init__(self, who: Account, go: str, helper: str, site: str, root: Path,
                 targets: Targets, token_file: str | None = None) -> None:
        self.who, self.go, self.root, self.targets = who, go, root, targets
        self.stats = root / "helper-stats.jsonl"
        self.progs = {"helper": f"{helper} -site {site}"}
        if token_file:
            self.progs["warm"] = f"{helper} -site {site} -token-file {token_file}"

    def env(self, arm: str, cache: Path) -> dict[str, str]:
        env = {**self.targets.base, "GOPROXY": "off", "GOCACHE": str(cache)}
        if arm in self.progs:
            env["GOCACHEPROG"] = self.progs[arm]
            env["GOTUNE_CACHEPROG_STATS"] = str(self.stats)
        return env

    def fresh(self, name: str) -> Path:
        """An empty directory of the user's (a cache that starts cold)."""
        path = self.root / name.replace("/", "-")
        shutil.rmtree(path, ignore_errors=True)
        user_dir(path, self.who)
        return path

    def build(self, arm: str, cache: Path, target: str) -> float:
        argv, cwd = self.targets.argv(self.go, target)
        return run_timed(argv, self.who, cwd, self.env(arm, cache))

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


def interleaved(arms: list[str], rounds: int,
                run: Callable[[str], float]) -> dict[str, list[float]]:
    """``run(arm)`` for each arm, ``rounds`` times, in ABBA order (A B, B A, ...)."""
    out: dict[str, list[float]] = {arm: [] for arm in arms}
    for i in range(rounds):
        for arm in arms if i % 2 == 0 else list(reversed(arms)):
            out[arm].append(run(arm))
    return out


def warm_site(arms: Arms, target: str) -> dict[str, Any]:
    """A builder's build of ``target`` from an empty cache: its outputs go to the site."""
    took = arms.build("warm", arms.fresh(f"warm-{target}"), target)
    done = arms.helper_stats()
    return {"seconds": round(took, 3), "puts": sum(s.get("Puts", 0) for s in done),
            "uploads": sum(s.get("Uploads", 0) for s in done),
            "upload_errors": sum(s.get("UploadErrors", 0) for s in done)}


def measure_cold(arms: Arms, target: str, runs: int) -> dict[str, Any]:
    """The first build of ``target`` from an empty cache, with the site against without."""
    caches: dict[str, Path] = {}

    def run(arm: str) -> float:
        caches[arm] = arms.fresh(f"{arm}-{target}")
        return arms.build(arm, caches[arm], target)

    samples = interleaved(["helper", "plain"], runs, run)
    out = figures(samples["helper"], samples["plain"], ("site", "plain"))
    done = arms.helper_stats()
    out["site_hits"] = statistics.median([s.get("SiteHits", 0) for s in done] or [0])
    out["gets"] = statistics.median([s.get("Gets", 0) for s in done] or [0])
    # Why a run got fewer hits than it could: the site failed, or used up the budget.
    out["site_down"] = sorted({s["SiteDown"] for s in done if s.get("SiteDown")})
    out["site_slow_runs"] = sum(bool(s.get("SiteSlow")) for s in done)
    return out


def measure_noop(arms: Arms, target: str, pairs: int) -> dict[str, Any]:
    """A no-op build of ``target`` with the helper against without, on the caches the
    last cold runs left warm."""
    caches = {arm: arms.root / f"{arm}-{target}".replace("/", "-") for arm in ("helper", "plain")}
    for arm, cache in caches.items():  # warm-up: not counted
        arms.build(arm, cache, target)
    samples = interleaved(["helper", "plain"], pairs,
                          lambda arm: arms.build(arm, caches[arm], target))
    arms.helper_stats()
    out = figures(samples["helper"], samples["plain"], ("helper", "plain"))
    out["ratio"] = (round(out["helper_median_s"] / out["plain_median_s"], 3)
                    if out["plain_median_s"] else None)  # above 1: the helper costs time
    out["verdict"] = verdict(summarize(samples["helper"]), summarize(samples["plain"]))
    return out


def judge(cold: dict[str, Any], noops: list[dict[str, Any]]) -> tuple[bool, bool, str]:
    """(keep, site_cold, why) from the workload's cold figures and every no-op's."""
    if cold.get("site_down"):
        return False, True, (f"the site failed while apply measured ({cold['site_down'][0]}); "
                             "apply measures again")
    if not cold.get("site_hits"):
        return False, True, ("the site held none of the workload's outputs (no builder has "
                             "built it with this Go yet); apply measures again")
    gain = cold.get("ratio") or 0.0
    if not cold.get("apart") or gain < MIN_COLD_GAIN:
        return False, False, (f"the site made a cold build only {gain:.2f}x faster (needs "
                              f"{MIN_COLD_GAIN}x and ranges apart)")
    slower = [n for n in noops if n.get("verdict") == SLOWER]
    if slower:
        return False, False, f"the helper made a warm no-op build slower ({slower[0]['ratio']}x)"
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


def measure(args: argparse.Namespace, who: Account, record: dict[str, Any], root: Path) -> None:
    """Fill ``record``: a builder's warm-up, or a reader's cold and no-op figures."""
    targets = Targets(who, args.go, record["go_version"], args.packages, args.cmd_go,
                      root / "download")
    record["workload"] = targets.info
    arms = Arms(who, args.go, args.helper, args.site, root, targets, args.token_file)
    if args.token_file:
        record["role"] = "builder"
        record["warmed"] = {name: warm_site(arms, name) for name in targets.names}
        uploads = sum(w["uploads"] for w in record["warmed"].values())
        record["keep"], record["site_cold"] = True, False
        record["why"] = (f"a builder: its helper fills the site ({uploads} outputs uploaded "
                         "while it built the workload)")
        return
    record["role"] = "reader"
    cold = {name: measure_cold(arms, name, args.cold_runs) for name in targets.names}
    noop = {name: measure_noop(arms, name, args.pairs) for name in targets.names}
    record["cold"], record["noop"] = cold[WORKLOAD], noop[WORKLOAD]
    if CMD_GO in cold:
        record["cold_cmd_go"], record["noop_cmd_go"] = cold[CMD_GO], noop[CMD_GO]
    record["keep"], record["site_cold"], record["why"] = judge(cold[WORKLOAD],
                                                              list(noop.values()))


def run(args: argparse.Namespace) -> int:
    """``gotune buildcache-measure``: measure, record, print the record as JSON."""
    if args.cold_runs < 1 or args.pairs < 1:
        raise UsageError("--cold-runs and --pairs must be at least 1")
    if args.packages is not None and args.packages < 1:
        raise UsageError("--packages must be at least 1")
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
        measure(args, who, record, root)
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        # A helper that cannot even build the workload is not kept.
        record.update({"keep": False, "site_cold": False,
                       "why": f"the measurement failed: {str(exc).splitlines()[0][:300]}"})
    finally:
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
    if not record["keep"] and not record["site_cold"] and args.remove_unhelpful:
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
    p.add_argument("--packages", type=int, default=None,
                   help="the generated workload's packages (default: verify's, ~200)")
    p.add_argument("--cmd-go", action="store_true", help="also build cmd/go")
    p.add_argument("--token-file", default=None,
                   help="a builder's token (the user's copy): warm the site instead")
    p.add_argument("--remove-unhelpful", action="store_true",
                   help="take GOCACHEPROG out of the users' GOENV when it is not kept")
