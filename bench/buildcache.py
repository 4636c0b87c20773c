"""The team build cache against its targets (issue #17); prints one JSON document.

One run on this machine, so that every ratio compares arms measured side by side:

- the site: ``gotune buildcache serve`` (this tree) in its own process on loopback;
- two sandbox hosts (tests/sandbox.py): ``warmer``, a builder, fills the site with a
  ``go build cmd/go`` and the workload; ``fresh`` has never built anything;
- the helper, built from ``templates/buildcache-cacheprog.go.j2`` as apply builds it.

Figures (medians; ``ratio`` always from this run's arms):

1. ``cold_cmd_go``: on ``fresh``, the first ``go build cmd/go`` from an empty GOCACHE with
   the site (a read-only helper) against without any helper, ``--cold-runs`` each,
   interleaved. Target: at least 5x faster.
2. ``warm_noop``: a no-op ``go build`` with the helper against without, on the same warm
   local tier, for cmd/go and the workload, ``--pairs`` interleaved pairs. Target: at
   most 1.05x the time.
3. ``site_down``: the workload after one file changed (one local miss) with the helper
   whose site refuses connections, or accepts and never answers, against no helper;
   each time the first go command after the site failed (the helper's note that it is
   down removed). Target: at most 0.1 s longer (medians).
4. ``clients_16``: 16 cold builds of the workload at once on ``fresh``, each from its own
   empty GOCACHE, all reading the site: errors, wall time, the site's hit rate.
5. ``helper_language``: start-up (time to the first answer go waits for) of the Go helper
   and of the standard-library Python one (``python3 -S -I bench/cacheprog_py.py``), and
   a warm no-op build of the workload with each against none.

Run as root: ``.venv/bin/python bench/buildcache.py [--cold-runs 3] [--pairs 9]``
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gotune.agent.buildcache.token import digest, new_token  # noqa: E402
from tests.cacheprog import GO, build_helper, hello_module  # noqa: E402
from tests.sandbox import Sandbox, SandboxHost, missing_requirement  # noqa: E402

PY = sys.executable
WORKLOAD_IMPORTS = ("strings", "sort", "encoding/json", "net/url", "text/template")
CLIENTS = 16
# Where the bench keeps what the sandbox hosts read (their /tmp is a fresh tmpfs; /var/tmp
# is this machine's, seen through each host's overlay).
WORK_PARENT = "/var/tmp"
# Inside a host: seconds one command took, printed last (its output goes to stderr).
TIMED = ("python3 -c 'import subprocess,sys,time; t=time.perf_counter(); "
         "r=subprocess.run(sys.argv[1:], stdout=2); print(time.perf_counter()-t); "
         "sys.exit(r.returncode)'")
GO_DEFAULTS = "GOENV=off GOTOOLCHAIN=local GOFLAGS= GOPROXY=off GOSUMDB=off"


def spread(values: list[float]) -> dict[str, Any]:
    return {"median_s": round(statistics.median(values), 4), "min_s": round(min(values), 4),
            "max_s": round(max(values), 4), "runs": len(values)}


def compare(a: list[float], b: list[float], names: tuple[str, str]) -> dict[str, Any]:
    """Both arms' spreads and median b / median a."""
    ma, mb = statistics.median(a), statistics.median(b)
    return {names[0]: spread(a), names[1]: spread(b),
            "ratio": round(mb / ma, 3) if ma else None,
            "difference_s": round(ma - mb, 4)}


def interleaved(arms: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run each arm ``rounds`` times in ABBA order (A B, B A, ...)."""
    out: dict[str, list[float]] = {name: [] for name in arms}
    names = list(arms)
    for i in range(rounds):
        for name in names if i % 2 == 0 else list(reversed(names)):
            out[name].append(arms[name]())
    return out


@contextmanager
def site(work: Path, token: str) -> Iterator[str]:
    digest_file = work / "token.sha256"
    digest_file.write_text(digest(token) + "\n")
    proc = subprocess.Popen(
        [PY, "-m", "gotune", "buildcache", "serve", "--listen", "127.0.0.1:0", "--cache-dir",
         str(work / "site"), "--token-digest-file", str(digest_file), "--wear-state",
         str(work / "no-wear.json"), "--json"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())["url"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/healthz", timeout=10) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


class Host:
    """Builds on one sandbox host, timed inside it."""

    def __init__(self, host: SandboxHost, helper: Path) -> None:
        self.host, self.helper = host, helper

    def sh(self, cmd: str, timeout: float = 3600) -> str:
        out = self.host.run(cmd, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"{self.host.name}: {cmd[:200]}: {out.stderr[-1500:]}")
        return out.stdout

    def build(self, where: str, gocache: str, prog: str | None, target: str = ".",
              extra: str = "") -> float:
        """Seconds of one ``go build -o /dev/null TARGET`` in ``where``."""
        env = f"{GO_DEFAULTS} GOCACHE={shlex.quote(gocache)} {extra}"
        if prog is not None:
            env += f" GOCACHEPROG={shlex.quote(prog)}"
        out = self.sh(f"cd {shlex.quote(where)} && env {env} {TIMED} go build -o /dev/null "
                      f"{target}")
        return float(out.strip().splitlines()[-1])

    def fresh_cache(self, path: str) -> str:
        self.sh(f"rm -rf {shlex.quote(path)} && mkdir -p {shlex.quote(path)}")
        return path

    def prog(self, url: str, *args: str) -> str:
        return " ".join([str(self.helper), "-site", url, *args])


def cold_cmd_go(fresh: Host, url: str, runs: int) -> dict[str, Any]:
    def arm(prog: str | None, name: str) -> Callable[[], float]:
        return lambda: fresh.build("/", fresh.fresh_cache(f"/root/cold-{name}"), prog, "cmd/go")

    samples = interleaved({"site": arm(fresh.prog(url), "site"), "none": arm(None, "none")},
                          runs)
    out = compare(samples["site"], samples["none"], ("with_site", "without"))
    out["target"] = ">= 5x faster"
    out["target_met"] = (out["ratio"] or 0) >= 5
    return out


def warm_noop(fresh: Host, url: str, workload: str, pairs: int) -> dict[str, Any]:
    out: dict[str, Any] = {"target": "<= 1.05x"}
    for name, where, target in (("cmd/go", "/", "cmd/go"), ("workload", workload, ".")):
        cache = fresh.fresh_cache(f"/root/noop-{name.replace('/', '-')}")
        fresh.build(where, cache, fresh.prog(url), target)  # fills the local tier
        fresh.build(where, cache, None, target)
        samples = interleaved({
            "helper": functools.partial(fresh.build, where, cache, fresh.prog(url), target),
            "none": functools.partial(fresh.build, where, cache, None, target),
        }, pairs)  # fmt: skip
        figures = compare(samples["none"], samples["helper"], ("without", "with_helper"))
        figures["target_met"] = (figures["ratio"] or 9) <= 1.05
        out[name] = figures
    return out


def site_down(fresh: Host, workload: str, pairs: int) -> dict[str, Any]:
    """An incremental build: the helper asks a dead site once, then builds locally."""
    cache = fresh.fresh_cache("/root/down")
    fresh.build(workload, cache, None)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{free.getsockname()[1]}"
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(1024)  # accepts (the kernel does) and never answers
    silent = f"http://127.0.0.1:{mute.getsockname()[1]}"
    counter = iter(range(10**6))

    def incremental(prog: str | None) -> float:
        n = next(counter)
        fresh.sh(f"cd {workload} && sed -i 's/^const Edit = .*/const Edit = {n}/' main.go "
                 f"&& rm -f {cache}/gotune-cacheprog-site-down")
        return fresh.build(workload, cache, prog)

    out: dict[str, Any] = {"target": "<= 0.1 s longer than no helper"}
    try:
        for name, url in (("refused", refused), ("never_answers", silent)):
            samples = interleaved({"helper": functools.partial(incremental, fresh.prog(url)),
                                   "none": functools.partial(incremental, None)}, pairs)
            figures = compare(samples["none"], samples["helper"], ("without", "with_helper"))
            figures["extra_s"] = round(-figures.pop("difference_s"), 4)
            figures["target_met"] = figures["extra_s"] <= 0.1
            out[name] = figures
    finally:
        mute.close()
    return out


def clients(fresh: Host, url: str, workload: str) -> dict[str, Any]:
    before = health(url)
    stats = "/root/clients-stats.jsonl"
    script = (f"rm -f {stats}; cd {workload}; for i in $(seq {CLIENTS}); do "
              f"( rm -rf /root/client-$i && env {GO_DEFAULTS} GOCACHE=/root/client-$i "
              f"GOTUNE_CACHEPROG_STATS={stats} GOCACHEPROG={shlex.quote(fresh.prog(url))} "
              "go build -o /dev/null . >/dev/null 2>&1; echo \"rc $?\" ) & done; wait")
    start = time.monotonic()
    codes = [line.split()[1] for line in fresh.sh(script).splitlines() if line.startswith("rc ")]
    wall = time.monotonic() - start
    lines = [json.loads(x) for x in fresh.sh(f"cat {stats}").splitlines() if x.strip()]
    after = health(url)
    hits = after["hits"] - before["hits"]
    misses = after["misses"] - before["misses"]
    return {
        "clients": CLIENTS, "errors": sum(c != "0" for c in codes), "finished": len(codes),
        "wall_s": round(wall, 2), "site_hits": hits, "site_misses": misses,
        "site_hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
        "helper_site_hits": sum(s["SiteHits"] for s in lines),
        "helper_gets": sum(s["Gets"] for s in lines),
        "target_met": all(c == "0" for c in codes) and len(codes) == CLIENTS,
    }  # fmt: skip


def first_answer(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from starting a helper to its first line (what go waits for)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    proc.stdout.readline()
    took = time.perf_counter() - start
    proc.stdin.write(b'{"ID":1,"Command":"close"}\n')
    proc.stdin.close()
    proc.wait()
    return took


def helper_language(helper: Path, work: Path, pairs: int) -> dict[str, Any]:
    """Go helper or Python helper: what go pays to start each, and on a warm no-op build."""
    python = ["python3", "-S", "-I", str(ROOT / "bench" / "cacheprog_py.py")]
    env = {**os.environ, "GOENV": "off", "GOTOOLCHAIN": "local", "GOCACHE": str(work / "lang")}
    starts = interleaved({"go": lambda: first_answer([str(helper)], env),
                          "python": lambda: first_answer(python, env)}, 30)
    mod = hello_module(work / "lang-mod", imports=WORKLOAD_IMPORTS)

    def build(prog: str | None) -> float:
        e = dict(env, **({"GOCACHEPROG": prog} if prog else {}))
        start = time.perf_counter()
        subprocess.run([str(GO), "build", "-o", os.devnull, "."], cwd=mod, env=e, check=True,
                       capture_output=True)
        return time.perf_counter() - start

    build(None)
    build(" ".join(python))
    build(str(helper))
    noop = interleaved({"none": lambda: build(None), "go": lambda: build(str(helper)),
                        "python": lambda: build(" ".join(python))}, pairs)
    none = statistics.median(noop["none"])
    return {
        "first_answer_ms": {k: round(statistics.median(v) * 1000, 2) for k, v in starts.items()},
        "warm_noop": {k: spread(v) for k, v in noop.items()},
        "warm_noop_ratio": {k: round(statistics.median(v) / none, 3) for k, v in noop.items()},
        "chosen": "go",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=9)
    parser.add_argument("--skip", nargs="*", default=[],
                        help="leave out: cold_cmd_go warm_noop site_down clients_16 "
                        "helper_language")
    args = parser.parse_args()
    why = missing_requirement()
    if why:
        sys.exit(f"bench/buildcache.py: {why}")
    work = Path(tempfile.mkdtemp(prefix="gotune-bench-buildcache-", dir=WORK_PARENT))
    os.chmod(work, 0o755)
    out: dict[str, Any] = {"cold_runs": args.cold_runs, "pairs": args.pairs,
                           "load_before": os.getloadavg()}
    try:
        helper = build_helper(work / "helper", Path(tempfile.gettempdir()) / "gotune-bench-gocache")
        token = new_token()
        (work / "token").write_text(token + "\n")
        workload = hello_module(work / "workload", name="workload", imports=WORKLOAD_IMPORTS)
        main_go = workload / "main.go"
        main_go.write_text(main_go.read_text() + "\nconst Edit = 0\n")
        if "helper_language" not in args.skip:
            out["helper_language"] = helper_language(helper, work, args.pairs)
        with site(work, token) as url, Sandbox(2) as box:
            warmer, fresh = (Host(h, helper) for h in box.hosts)
            for h in box.hosts:
                h.link_go()
            # A builder fills the site: cmd/go and the workload, from an empty cache.
            for where, target in (("/", "cmd/go"), (str(workload), ".")):
                warmer.build(where, warmer.fresh_cache("/root/warm"),
                             warmer.prog(url, "-token-file", str(work / "token")), target)
            out["site_after_warming"] = {k: health(url)[k] for k in ("objects", "cache_bytes")}
            wl = str(workload)
            if "cold_cmd_go" not in args.skip:
                out["cold_cmd_go"] = cold_cmd_go(fresh, url, args.cold_runs)
            if "warm_noop" not in args.skip:
                out["warm_noop"] = warm_noop(fresh, url, wl, args.pairs)
            if "site_down" not in args.skip:
                out["site_down"] = site_down(fresh, wl, args.pairs)
            if "clients_16" not in args.skip:
                out["clients_16"] = clients(fresh, url, wl)
            out["site_health"] = {k: health(url).get(k) for k in ("hits", "misses", "hit_rate",
                                                                   "objects", "tampered")}
    finally:
        out["load_after"] = os.getloadavg()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
