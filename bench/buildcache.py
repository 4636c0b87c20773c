"""The team build cache against its targets (issue #17); prints one JSON document.

One run on this machine, so that every ratio compares arms measured side by side:

- the site: ``gotune buildcache serve`` (this tree) in its own process on loopback;
- two sandbox hosts (tests/sandbox.py): ``warmer``, a builder, fills the site with a
  ``go build cmd/go`` and the workload; ``fresh`` has never built anything;
- the workload: verify's generated service (``gotune.agent.verify.workload``,
  ``--packages``, ~200 by default, and its dozen modules), at one path both hosts see,
  its modules downloaded once beforehand; built with ``go build ./...``;
- the helper, built from ``templates/buildcache-cacheprog.go.j2`` as apply builds it.

Figures (medians; ``ratio`` always from this run's arms):

1. ``cold_cmd_go``: on ``fresh``, the first ``go build cmd/go`` from an empty GOCACHE with
   the site (a read-only helper) against without any helper, ``--cold-runs`` each,
   interleaved. Target: at least 5x faster. ``cold_workload``: the same for the workload.
2. ``warm_noop``: a no-op ``go build`` with the helper against without, on the same warm
   local tier, for cmd/go and the workload, ``--pairs`` interleaved pairs. Target: at
   most 1.05x the time.
3. ``site_down``: the workload after one file changed (one local miss) with the helper
   whose site refuses connections, or accepts and never answers, against no helper
   (and against the helper with the live site: what the failure itself adds); each
   time the first go command after the site failed (the helper's note that it is down
   removed). Target: at most 0.1 s longer (medians).
4. ``clients_16``: 16 cold builds of the workload at once on ``fresh``, each from its own
   empty GOCACHE, all reading the site: errors, wall time, the site's hit rate.
5. ``helper_language``: start-up (time to the first answer go waits for) of the Go helper
   and of the standard-library Python one (``python3 -S -I bench/cacheprog_py.py``), and
   a warm no-op build of the workload with each against none (on this machine, no site).
6. ``protocol_floor``: one get's round trip with nothing behind it
   (``bench/cacheprog_floor.go``, shaped as cmd/go's client), with both sides where the
   scheduler puts them, on one CPU, and on two; ``warm_noop``'s ``floor_s`` is its gets
   times each: the least any helper adds to a no-op build on this machine.

Run as root, alone on the machine's benchmarks:
``flock /tmp/gotune-bench.lock .venv/bin/python -m bench.buildcache [--cold-runs 5] [--pairs 9]``
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gotune.agent.buildcache.token import digest, new_token  # noqa: E402
from gotune.agent.verify import workload as generated  # noqa: E402
from gotune.agent.verify.bench import go_line  # noqa: E402
from tests.cacheprog import GO, build_helper  # noqa: E402
from tests.sandbox import Sandbox, SandboxHost, missing_requirement  # noqa: E402

PY = sys.executable
CLIENTS = 16
# Helper start-ups timed per language (each a few ms: many runs are cheap).
STARTS = 30
WORKLOAD = "./..."
CMD_GO = "cmd/go"
# Where the bench keeps what the sandbox hosts read (their /tmp is a fresh tmpfs; /var/tmp
# is this machine's, seen through each host's overlay).
WORK_PARENT = "/var/tmp"
# Inside a host: seconds one command took, printed last (its output goes to stderr).
TIMED = ("python3 -c 'import subprocess,sys,time; t=time.perf_counter(); "
         "r=subprocess.run(sys.argv[1:], stdout=2); print(time.perf_counter()-t); "
         "sys.exit(r.returncode)'")
GO_DEFAULTS = "GOENV=off GOTOOLCHAIN=local GOFLAGS= GOPROXY=off GOSUMDB=off GOWORK=off"
FLOOR_SOURCE = ROOT / "bench" / "cacheprog_floor.go"
FLOOR_ROUNDS = 5


def floor_arms() -> dict[str, tuple[list[str], str]]:
    """Where the two sides of the floor's round trip run, (the asker's pinning, the
    answerer's), on CPUs this process may use (a cpuset may exclude CPU 0); one CPU
    has no ``cross_cpu``."""
    cpus = sorted(os.sched_getaffinity(0))
    arms: dict[str, tuple[list[str], str]] = {
        "free": ([], ""), "same_cpu": (["taskset", "-c", str(cpus[0])], f"taskset -c {cpus[0]}")}
    if len(cpus) > 1:
        arms["cross_cpu"] = (["taskset", "-c", str(cpus[0])], f"taskset -c {cpus[1]}")
    return arms


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


@dataclass(frozen=True)
class Workload:
    """The generated service both hosts build, its module cache, the file an edit changes."""

    service: str
    modcache: str
    edit: str
    size: dict[str, Any]


def make_workload(work: Path, packages: int) -> Workload:
    """Verify's generated service under ``work`` and its modules, downloaded once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update(GOENV="off", GOTOOLCHAIN="local", GOFLAGS="", GOSUMDB="off", GOWORK="off")
    version = subprocess.run([str(GO), "env", "GOVERSION"], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
    tree = generated.generate(str(work / "workload"), go_line([version]), packages)
    service, modcache = str(tree["service"]), str(work / "modcache")
    subprocess.run([str(GO), "mod", "download"], cwd=service, check=True, env=dict(
        env, GOMODCACHE=modcache, GOPROXY=f"file://{tree['proxy']}",
        GOCACHE=str(work / "download-cache")))
    edit = Path(service) / "cmd" / "server" / "main.go"
    edit.write_text(edit.read_text() + "\nconst Edit = 0\n")
    size = {k: tree[k] for k in ("packages", "files", "bytes", "modules")}
    return Workload(service, modcache, str(edit), size)


class Host:
    """Builds on one sandbox host, timed inside it."""

    def __init__(self, host: SandboxHost, helper: Path, workload: Workload) -> None:
        self.host, self.helper, self.workload = host, helper, workload

    def sh(self, cmd: str, timeout: float = 3600) -> str:
        out = self.host.run(cmd, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"{self.host.name}: {cmd[:200]}: {out.stderr[-1500:]}")
        return out.stdout

    def build(self, target: str, gocache: str, prog: str | None, stats: str | None = None
              ) -> float:
        """Seconds of one build of ``target``: ``go build ./...`` of the workload, or
        ``go build -o /dev/null cmd/go``; ``stats``: where the helper appends its counts."""
        env = (f"{GO_DEFAULTS} GOMODCACHE={shlex.quote(self.workload.modcache)} "
               f"GOCACHE={shlex.quote(gocache)}")
        if prog is not None:
            env += f" GOCACHEPROG={shlex.quote(prog)}"
        if stats is not None:
            env += f" GOTUNE_CACHEPROG_STATS={shlex.quote(stats)}"
        where, argv = (self.workload.service, "./...") if target == WORKLOAD else (
            "/", f"-o /dev/null {target}")
        out = self.sh(f"cd {shlex.quote(where)} && env {env} {TIMED} go build {argv}")
        return float(out.strip().splitlines()[-1])

    def fresh_cache(self, path: str) -> str:
        self.sh(f"rm -rf {shlex.quote(path)} && mkdir -p {shlex.quote(path)}")
        return path

    def prog(self, url: str, *args: str) -> str:
        return " ".join([str(self.helper), "-site", url, *args])


def cold(fresh: Host, url: str, runs: int, target: str) -> dict[str, Any]:
    """The first build of ``target`` from an empty cache with the site against without."""
    def arm(prog: str | None, name: str) -> Callable[[], float]:
        return lambda: fresh.build(target, fresh.fresh_cache(f"/root/cold-{name}"), prog)

    samples = interleaved({"site": arm(fresh.prog(url), "site"), "none": arm(None, "none")},
                          runs)
    out = compare(samples["site"], samples["none"], ("with_site", "without"))
    out["target"] = ">= 5x faster"
    out["target_met"] = (out["ratio"] or 0) >= 5
    return out


def warm_noop(fresh: Host, url: str, pairs: int) -> dict[str, Any]:
    """A no-op build with the helper against without; ``helper_answering_s``: the part of
    each build the helper spent answering gets (its own counts), against ``extra_s``."""
    out: dict[str, Any] = {"target": "<= 1.05x"}
    for name in (CMD_GO, WORKLOAD):
        cache = fresh.fresh_cache(f"/root/noop-{name.replace('/', '-')}")
        stats = f"/root/noop-stats-{name.replace('/', '-')}.jsonl"
        fresh.build(name, cache, fresh.prog(url))  # fills the local tier
        fresh.build(name, cache, None)
        fresh.sh(f"rm -f {stats}")
        samples = interleaved({
            "helper": functools.partial(fresh.build, name, cache, fresh.prog(url), stats),
            "none": functools.partial(fresh.build, name, cache, None),
        }, pairs)  # fmt: skip
        figures = compare(samples["none"], samples["helper"], ("without", "with_helper"))
        figures["target_met"] = (figures["ratio"] or 9) <= 1.05
        counts = [json.loads(x) for x in fresh.sh(f"cat {stats}").splitlines() if x.strip()]
        figures["extra_s"] = round(-figures["difference_s"], 4)
        figures["gets"] = int(statistics.median(c["Gets"] for c in counts))
        figures["index_hits"] = int(statistics.median(c["IndexHits"] for c in counts))
        figures["helper_answering_s"] = round(
            statistics.median(c["AnswerNs"] for c in counts) / 1e9, 4)
        out[name] = figures
    return out


def site_down(fresh: Host, url: str, pairs: int) -> dict[str, Any]:
    """An incremental build: the helper asks a dead site once, then builds locally.

    Three arms, interleaved: no helper, the helper with the live site (what a helper
    costs at all), the helper with the dead one; ``extra_s`` is against no helper,
    ``failure_extra_s`` against the live site (what the failure itself costs).
    """
    cache = fresh.fresh_cache("/root/down")
    fresh.build(WORKLOAD, cache, None)
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
        fresh.sh(f"sed -i 's/^const Edit = .*/const Edit = {n}/' {fresh.workload.edit} "
                 f"&& rm -f {cache}/gotune-cacheprog-site-down")
        return fresh.build(WORKLOAD, cache, prog)

    out: dict[str, Any] = {"target": "<= 0.1 s longer than no helper"}
    try:
        for name, dead in (("refused", refused), ("never_answers", silent)):
            samples = interleaved({
                "helper": functools.partial(incremental, fresh.prog(dead)),
                "live": functools.partial(incremental, fresh.prog(url)),
                "none": functools.partial(incremental, None)}, pairs)  # fmt: skip
            figures = compare(samples["none"], samples["helper"], ("without", "with_helper"))
            figures["extra_s"] = round(-figures.pop("difference_s"), 4)
            figures["with_live_site"] = spread(samples["live"])
            figures["failure_extra_s"] = round(
                statistics.median(samples["helper"]) - statistics.median(samples["live"]), 4)
            figures["target_met"] = figures["extra_s"] <= 0.1
            out[name] = figures
    finally:
        mute.close()
    return out


def clients(fresh: Host, url: str) -> dict[str, Any]:
    before = health(url)
    stats = "/root/clients-stats.jsonl"
    wl = fresh.workload
    script = (f"rm -f {stats}; cd {wl.service}; for i in $(seq {CLIENTS}); do "
              f"( rm -rf /root/client-$i && env {GO_DEFAULTS} GOCACHE=/root/client-$i "
              f"GOMODCACHE={wl.modcache} GOTUNE_CACHEPROG_STATS={stats} "
              f"GOCACHEPROG={shlex.quote(fresh.prog(url))} "
              "go build ./... >/dev/null 2>&1; echo \"rc $?\" ) & done; wait")
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


def protocol_floor(work: Path) -> dict[str, Any]:
    """The mean round trip of a get answered at once, per arm (``floor_arms``), the
    median of ``FLOOR_ROUNDS`` interleaved runs."""
    binary = work / "cacheprog-floor"
    env = {**os.environ, "GOENV": "off", "GOTOOLCHAIN": "local", "GOFLAGS": "",
           "GOCACHE": str(Path(tempfile.gettempdir()) / "gotune-bench-gocache")}
    subprocess.run([str(GO), "build", "-o", str(binary), str(FLOOR_SOURCE)], env=env,
                   check=True, capture_output=True, timeout=600)
    arms = floor_arms()

    def arm(pin: list[str], wrap: str) -> float:
        out = subprocess.run([*pin, str(binary), "-wrap", wrap], capture_output=True,
                             text=True, check=True, timeout=300)
        return float(json.loads(out.stdout)["mean_us"])

    runs = interleaved({k: functools.partial(arm, *v) for k, v in arms.items()}, FLOOR_ROUNDS)
    return {k: {"mean_us": round(statistics.median(v), 1), "runs_us": v} for k, v in runs.items()}


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


def helper_language(helper: Path, work: Path, wl: Workload, pairs: int) -> dict[str, Any]:
    """Go helper or Python helper: what go pays to start each, and on a warm no-op build."""
    python = ["python3", "-S", "-I", str(ROOT / "bench" / "cacheprog_py.py")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update(GOENV="off", GOTOOLCHAIN="local", GOFLAGS="", GOPROXY="off", GOSUMDB="off",
               GOWORK="off", GOMODCACHE=wl.modcache, GOCACHE=str(work / "lang"))
    starts = interleaved({"go": lambda: first_answer([str(helper)], env),
                          "python": lambda: first_answer(python, env)}, STARTS)

    def build(prog: str | None) -> float:
        e = dict(env, **({"GOCACHEPROG": prog} if prog else {}))
        start = time.perf_counter()
        subprocess.run([str(GO), "build", "./..."], cwd=wl.service, env=e, check=True,
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
        "first_answer_runs": STARTS,
        "warm_noop": {k: spread(v) for k, v in noop.items()},
        "warm_noop_ratio": {k: round(statistics.median(v) / none, 3) for k, v in noop.items()},
        "chosen": min(("go", "python"), key=lambda k: statistics.median(noop[k])),
        "chosen_by": "the lower median warm no-op build of the workload (go pays the "
                     "helper's start-up on every command)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=9)
    parser.add_argument("--packages", type=int, default=generated.SERVICE_PACKAGES,
                        help="the generated workload's size")
    parser.add_argument("--skip", nargs="*", default=[],
                        help="leave out: cold_cmd_go cold_workload warm_noop site_down "
                        "clients_16 helper_language protocol_floor")
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
        wl = make_workload(work, args.packages)
        out["workload"] = wl.size
        if "helper_language" not in args.skip:
            out["helper_language"] = helper_language(helper, work, wl, args.pairs)
        with site(work, token) as url, Sandbox(2) as box:
            warmer, fresh = (Host(h, helper, wl) for h in box.hosts)
            for h in box.hosts:
                h.link_go()
            # A builder fills the site: cmd/go and the workload, from an empty cache.
            warming = {}
            for target in (CMD_GO, WORKLOAD):
                warming[target] = round(warmer.build(
                    target, warmer.fresh_cache("/root/warm"),
                    warmer.prog(url, "-token-file", str(work / "token"))), 2)
            out["site_after_warming"] = {k: health(url)[k] for k in ("objects", "cache_bytes")}
            out["site_after_warming"]["builder_seconds"] = warming
            if "cold_cmd_go" not in args.skip:
                out["cold_cmd_go"] = cold(fresh, url, args.cold_runs, CMD_GO)
            if "cold_workload" not in args.skip:
                out["cold_workload"] = cold(fresh, url, args.cold_runs, WORKLOAD)
            if "warm_noop" not in args.skip:
                out["warm_noop"] = warm_noop(fresh, url, args.pairs)
            if "site_down" not in args.skip:
                out["site_down"] = site_down(fresh, url, args.pairs)
            if "clients_16" not in args.skip:
                out["clients_16"] = clients(fresh, url)
            if "protocol_floor" not in args.skip:
                out["protocol_floor"] = floor = protocol_floor(work)
                for figures in (out.get("warm_noop") or {}).values():
                    if isinstance(figures, dict):
                        figures["floor_s"] = {k: round(figures["gets"] * v["mean_us"] / 1e6, 4)
                                              for k, v in floor.items()}
            out["site_health"] = {k: health(url).get(k) for k in ("hits", "misses", "hit_rate",
                                                                   "objects", "tampered")}
    except BaseException as exc:  # a long run's figures so far are printed all the same
        out["error"] = f"{exc.__class__.__name__}: {exc}"
        raise
    finally:
        out["load_after"] = os.getloadavg()
        shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
