"""Go on a WSL2 distro with its caches on C:, before and after gotune apply; prints JSON.

A sandbox host poses as a WSL2 distro (``tests/sandbox_wsl.py``: C: at /mnt/c is the
9p-like slow9p mount, ``--latency-ms`` per metadata operation). Its developer starts
where many WSL users are: GOCACHE and GOMODCACHE in the Windows profile on /mnt/c
(``go env -w`` written from a guide, or a GOPATH shared with Windows' go.exe), the
project in the Linux home, modules from a local upstream (tests/goproxy_tree.py, no
network). Then ``gotune apply`` runs (it moves both caches into Linux, maybe GOCACHE
to a tmpfs), and each run times, for the setup before (the old paths, given as
environment variables, which beat the GOENV file) and after (the GOENV gotune wrote):

- ``first build``: ``go build`` of the module with its dependencies downloaded and
  the standard library already in GOCACHE (a machine that has built Go before), but
  nothing of the module's own: GOCACHE is reset to that snapshot before each run;
- ``repeat build``: the same ``go build`` once more, nothing changed;
- ``go mod download``: every dependency into an empty module cache on the same
  filesystem as that setup's GOMODCACHE.

Runs interleave (before, after; after, before; ...) so drift on a shared machine hits
both; medians and the ratio before/after come from this one run, and the seed's
targets (first build <= 1.5 s, repeat build <= 0.3 s) are checked on the medians after.

Run as root: ``.venv/bin/python bench/wsl.py [--runs 5] [--latency-ms 0.5]``
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.slow_storage import sh, timed  # noqa: E402
from tests import goproxy_tree as upstream  # noqa: E402
from tests.sandbox import Sandbox, SandboxHost, missing_requirement  # noqa: E402
from tests.sandbox_wsl import Wsl2  # noqa: E402

USER = "dev"
PROFILE = "/mnt/c/Users/Dev User"
# Where the developer's caches are before gotune: their Windows profile on C:.
BEFORE = {"GOCACHE": f"{PROFILE}/AppData/Local/go-build", "GOMODCACHE": f"{PROFILE}/go/pkg/mod"}
# The dependency zip's size: enough bytes to read, small enough to build fast.
BIG_BYTES = 256 << 10
# The seed's targets for a tuned WSL2 distro (medians after apply).
TARGETS_S = {"first build": 1.5, "repeat build": 0.3}
# The standard library the app needs, built once into this Linux directory and unpacked
# into a setup's GOCACHE before each first build.
STD = "/home/dev/.cache/gotune-bench-std"
WARM_MAIN = "package main\n\nfunc main() { println(1) }\n"
BUILD = "go build -o /tmp/app ."


def assignments(values: dict[str, str]) -> str:
    """``K=V`` words, quoted: what ``timed`` exports for a setup."""
    return " ".join(f"{k}={shlex.quote(v)}" for k, v in values.items())


def go_env(host: SandboxHost, *keys: str) -> dict[str, str]:
    out = sh(host, f"cd ~/app && go env {' '.join(keys)}")
    return dict(zip(keys, out.splitlines(), strict=True))


def prepare(host: SandboxHost, proxy: str) -> None:
    """The developer as they were: GOENV pointing both caches at C:, the app, std built."""
    host.add_user(USER)
    host.link_go()
    goenv = "".join(f"{k}={v}\n" for k, v in {
        **BEFORE, "GOPROXY": proxy, "GOSUMDB": "off", "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": "local", "GOTELEMETRY": "off"}.items())  # fmt: skip
    q = shlex.quote
    sh(host, f"mkdir -p ~/.config/go ~/app ~/warm {q(BEFORE['GOCACHE'])} "
             f"{q(BEFORE['GOMODCACHE'])} && printf %s {q(goenv)} > ~/.config/go/env && "
             f"printf %s {q(upstream.APP_GOMOD)} > ~/app/go.mod && "
             f"printf %s {q(upstream.APP_MAIN)} > ~/app/main.go"
             f" && printf 'module warm\\n' > ~/warm/go.mod && printf %s {q(WARM_MAIN)} > "
             f"~/warm/main.go && cd ~/warm && GOCACHE={STD} go build -o /dev/null . && "
             "cd ~/app && go mod download && go build -o /dev/null .")  # fmt: skip


def one_run(host: SandboxHost, env: str, cache: str, modcache: str) -> dict[str, float]:
    """First build, repeat build and go mod download for one setup.

    + env: ``K=V`` words the setup exports (see ``assignments``)
    + cache, modcache: its GOCACHE and GOMODCACHE
    """
    q = shlex.quote
    sh(host, f"rm -rf {q(cache)} && mkdir -p {q(cache)} && cp -r {STD}/. {q(cache)}/")
    first = timed(host, env, BUILD)
    repeat = timed(host, env, BUILD)
    fresh = f"{modcache.rstrip('/')}-bench-download"
    clean = f"export {env} GOMODCACHE={q(fresh)} && go clean -modcache && rm -rf {q(fresh)}"
    sh(host, f"cd ~/app && {clean}")
    download = timed(host, f"{env} GOMODCACHE={q(fresh)}", "go mod download")
    sh(host, f"cd ~/app && {clean}")
    return {"first build": first, "repeat build": repeat, "go mod download": download}


def summary(before: list[float], after: list[float], target: float | None) -> dict[str, Any]:
    b, a = statistics.median(before), statistics.median(after)
    out: dict[str, Any] = {"before_s": round(b, 3), "after_s": round(a, 3),
                           "ratio": round(b / a, 1) if a > 0 else None,
                           "before_runs": [round(x, 3) for x in before],
                           "after_runs": [round(x, 3) for x in after]}  # fmt: skip
    if target is not None:
        out["target_s"] = target
        out["target_met"] = a <= target
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="runs per setup (medians)")
    p.add_argument("--latency-ms", type=float, default=0.5,
                   help="9p milliseconds per metadata operation on /mnt/c")
    args = p.parse_args()
    reason = missing_requirement()
    if reason:
        raise SystemExit(reason)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        modules = upstream.standard_modules(big_bytes=BIG_BYTES)
        tree = upstream.build_tree(Path(tmp) / "upstream", modules)
        with upstream.StaticUpstream(tree) as up, Sandbox(
            1, data=[{"gotune_users": [USER]}], wsl=Wsl2(latency_ms=args.latency_ms)
        ) as box:
            host = box.hosts[0]
            prepare(host, up.url)
            applied = subprocess.run(
                [sys.executable, "-m", "gotune", "apply", str(box.inventory), "--yes",
                 "--no-verify", "--json"], capture_output=True, text=True, cwd=ROOT,
                timeout=1800)  # fmt: skip
            if applied.returncode != 0:
                raise SystemExit(f"gotune apply failed: {applied.stderr[-2000:]}")
            decisions = json.loads(applied.stdout)["hosts"]["sbx1"]["plan"]["decisions"]
            before_env = assignments({**BEFORE, "GOTMPDIR": ""})
            after = go_env(host, "GOCACHE", "GOMODCACHE", "GOTMPDIR")
            runs: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
            setups = {"before": (before_env, BEFORE["GOCACHE"], BEFORE["GOMODCACHE"]),
                      # GOENV holds what gotune wrote; GOFLAGS only so export has a word.
                      "after": ("GOFLAGS=-mod=mod", after["GOCACHE"],
                                after["GOMODCACHE"])}  # fmt: skip
            for i in range(args.runs):
                for name in ("before", "after") if i % 2 == 0 else ("after", "before"):
                    for metric, s in one_run(host, *setups[name]).items():
                        runs[name].setdefault(metric, []).append(s)
    result: dict[str, Any] = {
        "runs": args.runs, "latency_ms": args.latency_ms, "before": BEFORE, "after": after,
        "applied": {d["key"]: d["value"] for d in decisions
                    if d["change"] and d["key"] in ("GOCACHE", "GOMODCACHE", "GOTMPDIR")},
    }  # fmt: skip
    for metric in ("first build", "repeat build", "go mod download"):
        result[metric] = summary(runs["before"][metric], runs["after"][metric],
                                 TARGETS_S.get(metric))  # fmt: skip
    result["targets_met"] = all(result[m]["target_met"] for m in TARGETS_S)
    result["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
