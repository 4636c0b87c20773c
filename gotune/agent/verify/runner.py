"""The verify runner, executed ON THE TARGET: benchmarks and state observations.

The control machine runs it from the agent zipapp as
``python3 gotune.pyz verify-runner REQUEST_JSON`` (see ``gotune.verify.remote``);
it prints one line ``GOTUNE-VERIFY {json}`` with raw observations, and the
control side turns them into checks, verdicts and a diagnosis (pure code,
unit-tested there). Standard library only.

Per developer user: go env in a login and a non-login shell (``shells``), then,
as that user, where each cache lives (``places``), gotune's services
(``services``) and the benchmarks (``bench``) of the variants (``variants``: tuned,
before, default) on the seed's, a generated (``workload``) and the user's own
(``projects``) workloads; once per host the CPU frequency caps, the NUMA record, the
wear state, a WSL2 distro's settings (``wsl``) and earlier results (``history``).
A request ``{"mode": "record", "path": P, "record": R}`` appends R to the history;
``{"mode": "baseline", "users": [...]}`` records the users' setup before apply
(``baseline``). ``{"cold": true}`` drops the page cache before every timed run (root).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

# Everything the user-side child runs is imported here, before it forks: as the
# user it may not be able to read a root-only copy of the agent.
from gotune.agent import mounts
from gotune.agent.paths import VERIFY_BASELINE
from gotune.agent.verify import (
    bench,
    buildcache,
    cold,
    places,
    projects,
    services,
    variants,
    wsl,
)
from gotune.agent.verify.baseline import read as read_baseline
from gotune.agent.verify.baseline import record as record_baseline
from gotune.agent.verify.cold import Dropper
from gotune.agent.verify.history import append_history, history_path, read_history
from gotune.agent.verify.process import RunnerError
from gotune.agent.verify.shells import (
    GO_KEY,
    User,
    as_user,
    go_env_value,
    login_env,
    read_goenv_file,
    shell_go_env,
)
from gotune.agent.verify.variants import Variant

MARKER = "GOTUNE-VERIFY "
# go env keys every observation reads; the plan's keys are added by the caller.
GO_ENV_KEYS = ("GOCACHE", "GOMODCACHE", "GOTMPDIR", "GOPROXY", "GOFLAGS", "GOROOT",
               "GOVERSION", "GOENV", "GOTOOLCHAIN", "GOPATH", "GOCACHEPROG")
# Caches whose placement the checks look at.
CACHE_KEYS = ("GOCACHE", "GOMODCACHE", "GOTMPDIR")
CPUFREQ_DIR = "/sys/devices/system/cpu"
CPUFREQ_KEYS = ("scaling_max_freq", "cpuinfo_max_freq")
# The generated service lives here, in a directory of the user's own: the system disk,
# kept across reboots, and the same for every variant (only the Go caches differ).
WORKLOAD_PARENT = "/var/tmp"


def read_cpufreq() -> list[dict[str, Any]]:
    """Each CPU's frequency limit and its hardware maximum (a cap shows as a gap)."""
    out: list[dict[str, Any]] = []
    with contextlib.suppress(OSError):
        names = sorted(n for n in os.listdir(CPUFREQ_DIR) if re.fullmatch(r"cpu\d+", n))
        for name in names:
            vals: dict[str, Any] = {"cpu": int(name[3:])}
            for key in CPUFREQ_KEYS:
                with contextlib.suppress(OSError, ValueError), open(
                        f"{CPUFREQ_DIR}/{name}/cpufreq/{key}", encoding="ascii") as fh:
                    vals[key] = int(fh.read().strip())
            if len(vals) == 1 + len(CPUFREQ_KEYS):
                out.append(vals)
    return out


def workload_dir(user_name: str, home: str) -> str:
    """Where the generated service lives (as the user): a private directory in
    ``WORKLOAD_PARENT`` (a stable path, so its build cache stays warm, and on the system
    disk, the same for every variant), else in the user's cache directory."""
    d = os.path.join(WORKLOAD_PARENT, f"gotune-verify-{user_name}")
    with contextlib.suppress(OSError):
        os.makedirs(d, mode=0o700, exist_ok=True)
        st = os.lstat(d)  # someone else's directory or a symlink is never used
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid():
            return d
    return os.path.join(home, ".cache", "gotune-verify", "workload")


def _unbuildable(job: bench.Job, why: str) -> dict[str, Any]:
    """A project benchmark that did not run: its error, no samples."""
    return {"name": job.name, "target_s": None, "samples": {}, "warmup_s": {}, "error": why,
            "uses": list(job.uses), "project": job.project}


def _benchmarks(args: dict[str, Any], user: tuple[str, str], variants: list[Variant],
                go: str, version: str, modcache: str, drop: Callable[[], None] | None,
                ) -> tuple[list[dict[str, Any]], str | None, dict[str, Any]]:
    """The selected benchmarks' results, or the error that kept them from running, and
    where the generated service lives."""
    name, user_home = user
    names = bench.selected(args.get("benchmarks"), bool(args.get("thorough")),
                           bool(args.get("mirror_bench")))
    runs = int(args["runs"]) if args.get("runs") else None
    todo = bench.jobs(names, [str(d) for d in args.get("projects") or []], runs)
    if not todo:
        return [], None, {}
    work = os.path.join(user_home, ".cache", "gotune-verify", "work")
    shutil.rmtree(work, ignore_errors=True)
    try:
        os.makedirs(work, mode=0o700, exist_ok=True)
    except OSError as exc:
        return [], f"cannot create {work}: {exc.strerror}", {}
    where = workload_dir(name, user_home)
    b = bench.Bench(go, work, variants, version, args.get("mirror_bench"), args.get("confirm"),
                    workload_dir=where, workload_packages=args.get("workload_packages"),
                    modcache_source=modcache, drop=drop)
    results = []
    for job in todo:
        why = projects.problem(job.project, os.getuid()) if job.project else None
        results.append(_unbuildable(job, why) if why else b.run_job(job))
    shutil.rmtree(work, ignore_errors=True)
    info: dict[str, Any] = {}
    if b.service is not None:
        info = {k: b.service[k] for k in ("packages", "files", "bytes", "modules")}
        info |= {"dir": b.service["service"],
                 "place": places.place(str(b.service["service"]), mounts.read_mountinfo())}
    return results, None, info


def user_side(args: dict[str, Any], user: tuple[str, str], login: dict[str, str],
              go: str | None, baseline: dict[str, Any] | None = None,
              baseline_error: str | None = None, dropper: Dropper | None = None,
              ) -> dict[str, Any]:
    """Everything that must run with the user's uid: path checks and benchmarks.

    + user: (name, home)
    + baseline: the user's record from the host's baseline, or None (``baseline_error``
      says why)
    + dropper: ``--cold``: asks the root parent to drop the page cache
    """
    user_home = user[1]
    table = mounts.read_mountinfo()
    result: dict[str, Any] = {"paths": {}, "benchmarks": [], "bench_error": None}
    # Read with the user's rights: GOENV and the mirror's cache_dir are the user's to name.
    result["goenv_file"] = read_goenv_file(login, user_home)
    mirror = services.mirror_probe(str(args.get("goproxy") or ""))
    if mirror is not None:
        result["mirror"] = mirror
        args = dict(args, mirror_bench=services.mirror_bench_args(mirror))
    cacheprog = buildcache.probe(str(args.get("gocacheprog") or ""), login)
    if cacheprog is not None:
        result["buildcache"] = cacheprog
    if go is None:
        result["bench_error"] = "go not found on the user's login PATH"
        return result
    try:
        version = go_env_value(go, login, "GOVERSION")
        run, described = variants.build(go, login, baseline, baseline_error, table)
        for v in run:
            v.version = version if v.go == go else go_env_value(str(v.go), v.env, "GOVERSION")
    except (RunnerError, OSError, subprocess.TimeoutExpired) as exc:
        result["bench_error"] = str(exc)
        return result
    values = described.pop("values")
    for key in CACHE_KEYS:
        if values[variants.TUNED].get(key):
            result["paths"][key] = places.observe_path(values[variants.TUNED][key], table)
    result["wrappers"] = services.run_wrappers(login)
    default_cache = values[variants.DEFAULT]["GOCACHE"]
    result["default_paths"] = {
        "GOCACHE": places.place(default_cache, table) | {"path": default_cache}}
    result["variants"] = {v.name: variants.describe(v, values[v.name], table) for v in run}
    result["variants"][variants.BEFORE] = (result["variants"].get(variants.BEFORE, {})
                                           | described[variants.BEFORE])
    result["benchmarks"], error, result["workload"] = _benchmarks(
        args, user, run, go, version, values[variants.TUNED]["GOMODCACHE"],
        dropper.drop if dropper is not None else None)
    if error:
        result["bench_error"] = error
    return result


def _user_record(user: User, index: int, args: dict[str, Any], keys: list[str],
                 baseline: tuple[dict[str, Any] | None, str | None]) -> dict[str, Any]:
    """One developer user's observations: their shells as root sees them, the rest as them."""
    login = login_env(user)
    rec: dict[str, Any] = {"uid": user.uid, "home": user.home}
    rec["login"] = shell_go_env(user, True, None, keys)
    go = rec["login"].get("path") if rec["login"].get("ok") else None
    rec["non_login"] = shell_go_env(user, False, go, keys)
    side_args = dict(args)
    side_args["goproxy"] = str(rec["login"].get("env", {}).get("GOPROXY", ""))
    side_args["gocacheprog"] = str(rec["login"].get("env", {}).get("GOCACHEPROG", ""))
    if index > 0:  # benchmarks once per host, for the first developer user
        side_args["benchmarks"] = []
        side_args["thorough"] = False
        side_args["projects"] = []
    data, why = baseline
    mine = (data or {}).get("users", {}).get(user.name) if data else None
    if data is not None and mine is None:
        why = f"the baseline has no record of {user.name} (added to gotune_users later?)"
    dropper = Dropper() if args.get("cold") and index == 0 else None
    rec.update(as_user(user, user_side, side_args, (user.name, user.home), login, go, mine,
                       why, dropper, helper=dropper))
    return rec


def measure(args: dict[str, Any]) -> dict[str, Any]:
    """The whole observation document for this host (``users``, ``cpufreq``, ``history`` ...)."""
    users = [str(u) for u in args.get("users") or []]
    if not users:
        users = [pwd.getpwuid(os.getuid()).pw_name]
    keys = sorted(set(GO_ENV_KEYS) | {k for k in args.get("keys", [])
                                      if GO_KEY.fullmatch(str(k))})
    out: dict[str, Any] = {"users": {}, "started": time.time()}
    if args.get("cold"):
        refused = cold.refusal()
        if refused:
            raise RunnerError(refused)
        out["cold"] = True
    baseline_data = read_baseline(str(args.get("baseline_path") or VERIFY_BASELINE))
    for index, name in enumerate(users):
        user = User(name, args.get("home"))
        out["users"][name] = _user_record(user, index, args, keys, baseline_data)
    out["cpufreq"] = read_cpufreq()
    numa = services.read_numa_record()
    if numa is not None:
        out["numa_wrappers"] = numa
    wear = services.wear_probe()
    if wear is not None:
        out["wear"] = wear
    found = wsl.observe()
    if found is not None:
        out["wsl"] = found
    hist = str(args.get("history_path") or history_path(out["users"][users[0]]["home"]))
    out["history_path"] = hist
    out["history"] = read_history(hist)
    out["finished"] = time.time()
    return out


def answer(request: str) -> dict[str, Any]:
    """The runner's answer to one request (JSON text); an ``error`` document when it fails."""
    try:
        args = json.loads(request)
        if not isinstance(args, dict):
            raise RunnerError("runner arguments must be a JSON object")
        if args.get("mode") == "record":
            append_history(str(args["path"]), args["record"])
            return {"recorded": args["path"]}
        if args.get("mode") == "baseline":
            return record_baseline(str(args.get("path") or VERIFY_BASELINE),
                                   [str(u) for u in args.get("users") or []], args.get("home"))
        return measure(args)
    except (RunnerError, ValueError, KeyError, OSError, subprocess.SubprocessError) as exc:
        return {"error": str(exc) or type(exc).__name__}


def run(args: argparse.Namespace) -> int:
    """``gotune verify-runner JSON``: print the answer as one ``GOTUNE-VERIFY`` line."""
    sys.stdout.write(MARKER + json.dumps(answer(args.request)) + "\n")
    sys.stdout.flush()
    return 0
