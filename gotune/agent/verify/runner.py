"""The verify runner, executed ON THE TARGET: benchmarks and state observations.

The control machine runs it from the agent zipapp as
``python3 gotune.pyz verify-runner REQUEST_JSON`` (see ``gotune.verify.remote``);
it prints one line ``GOTUNE-VERIFY {json}`` with raw observations, and the
control side turns them into checks, verdicts and a diagnosis (pure code,
unit-tested there). Standard library only.

Per developer user: go env in a login and a non-login shell (``shells``), then,
as that user, where each cache lives (``places``), gotune's services
(``services``) and the A/B benchmarks (``bench``); once per host the CPU
frequency caps, the NUMA record, the wear state, a WSL2 distro's settings (``wsl``)
and earlier results (``history``).
A request ``{"mode": "record", "path": P, "record": R}`` appends R to the history.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from typing import Any

# Everything the user-side child runs is imported here, before it forks: as the
# user it may not be able to read a root-only copy of the agent.
from gotune.agent import mounts
from gotune.agent.verify import bench, places, services, wsl
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

MARKER = "GOTUNE-VERIFY "
# go env keys every observation reads; the plan's keys are added by the caller.
GO_ENV_KEYS = ("GOCACHE", "GOMODCACHE", "GOTMPDIR", "GOPROXY", "GOFLAGS", "GOROOT",
               "GOVERSION", "GOENV", "GOTOOLCHAIN", "GOPATH")
# Caches whose placement the checks look at.
CACHE_KEYS = ("GOCACHE", "GOMODCACHE", "GOTMPDIR")
CPUFREQ_DIR = "/sys/devices/system/cpu"
CPUFREQ_KEYS = ("scaling_max_freq", "cpuinfo_max_freq")


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


def _benchmarks(args: dict[str, Any], user_home: str, variants: list[bench.Variant], go: str,
                version: str) -> tuple[list[dict[str, Any]], str | None]:
    """The selected benchmarks' results, or the error that kept them from running."""
    names = bench.selected(args.get("benchmarks"), bool(args.get("thorough")),
                           bool(args.get("mirror_bench")))
    if not names:
        return [], None
    work = os.path.join(user_home, ".cache", "gotune-verify", "work")
    shutil.rmtree(work, ignore_errors=True)
    try:
        os.makedirs(work, mode=0o700, exist_ok=True)
    except OSError as exc:
        return [], f"cannot create {work}: {exc.strerror}"
    b = bench.Bench(go, work, variants, version, args.get("mirror_bench"), args.get("confirm"))
    runs_override = args.get("runs")
    results = [b.run(name, int(runs_override) if runs_override else bench.BENCHMARKS[name][1])
               for name in names]
    shutil.rmtree(work, ignore_errors=True)
    return results, None


def user_side(args: dict[str, Any], user_home: str, login: dict[str, str],
              go: str | None) -> dict[str, Any]:
    """Everything that must run with the user's uid: path checks and benchmarks."""
    table = mounts.read_mountinfo()
    result: dict[str, Any] = {"paths": {}, "benchmarks": [], "bench_error": None}
    # Read with the user's rights: GOENV and the mirror's cache_dir are the user's to name.
    result["goenv_file"] = read_goenv_file(login, user_home)
    mirror = services.mirror_probe(str(args.get("goproxy") or ""))
    if mirror is not None:
        result["mirror"] = mirror
        args = dict(args, mirror_bench=services.mirror_bench_args(mirror))
    if go is None:
        result["bench_error"] = "go not found on the user's login PATH"
        return result
    tuned_env, default_env = dict(login), bench.default_env(login)
    try:
        tuned_vals = {k: go_env_value(go, tuned_env, k) for k in CACHE_KEYS}
        default_cache = go_env_value(go, default_env, "GOCACHE")
        version = go_env_value(go, tuned_env, "GOVERSION")
    except (RunnerError, OSError, subprocess.TimeoutExpired) as exc:
        result["bench_error"] = str(exc)
        return result
    for key, value in tuned_vals.items():
        if value:
            result["paths"][key] = places.observe_path(value, table)
    result["wrappers"] = services.run_wrappers(tuned_env)
    result["default_paths"] = {
        "GOCACHE": places.place(default_cache, table) | {"path": default_cache}}
    variants = [bench.Variant("tuned", tuned_env, tuned_vals["GOCACHE"]),
                bench.Variant("default", default_env, default_cache)]
    result["benchmarks"], error = _benchmarks(args, user_home, variants, go, version)
    if error:
        result["bench_error"] = error
    return result


def _user_record(user: User, index: int, args: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """One developer user's observations: their shells as root sees them, the rest as them."""
    login = login_env(user)
    rec: dict[str, Any] = {"uid": user.uid, "home": user.home}
    rec["login"] = shell_go_env(user, True, None, keys)
    go = rec["login"].get("path") if rec["login"].get("ok") else None
    rec["non_login"] = shell_go_env(user, False, go, keys)
    side_args = dict(args)
    side_args["goproxy"] = str(rec["login"].get("env", {}).get("GOPROXY", ""))
    if index > 0:  # benchmarks once per host, for the first developer user
        side_args["benchmarks"] = []
        side_args["thorough"] = False
    rec.update(as_user(user, user_side, side_args, user.home, login, go))
    return rec


def measure(args: dict[str, Any]) -> dict[str, Any]:
    """The whole observation document for this host (``users``, ``cpufreq``, ``history`` ...)."""
    users = [str(u) for u in args.get("users") or []]
    if not users:
        users = [pwd.getpwuid(os.getuid()).pw_name]
    keys = sorted(set(GO_ENV_KEYS) | {k for k in args.get("keys", [])
                                      if GO_KEY.fullmatch(str(k))})
    out: dict[str, Any] = {"users": {}, "started": time.time()}
    for index, name in enumerate(users):
        user = User(name, args.get("home"))
        out["users"][name] = _user_record(user, index, args, keys)
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
        return measure(args)
    except (RunnerError, ValueError, KeyError, OSError, subprocess.SubprocessError) as exc:
        return {"error": str(exc) or type(exc).__name__}


def run(args: argparse.Namespace) -> int:
    """``gotune verify-runner JSON``: print the answer as one ``GOTUNE-VERIFY`` line."""
    sys.stdout.write(MARKER + json.dumps(answer(args.request)) + "\n")
    sys.stdout.flush()
    return 0
