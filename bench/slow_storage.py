"""How much slower Go gets on the sandbox's slow storage; prints one JSON document.

On sandbox hosts with ``slow9p`` (one host per latency) and ``hdd`` storage, a
small module with dependencies (tests/goproxy_tree.py, served on loopback: no
network) is built by the developer user with one Go cache on the slow storage
and the other on the host's ext4 root, then timed:

- ``noop``: ``go build`` with nothing changed (every cache entry is looked up);
- ``incremental``: ``go build`` after main.go changed (one compile, one link).

Each case is run against its baseline in interleaved pairs (A B, B A, ...) and
reported as medians and their ratio, all from this one run:

- slow9p: the cache on /mnt/c vs on ext4;
- hdd: the cache on the throttled disk vs on the same disk unthrottled, both
  cold (unmounted and mounted again before every build): warm, the page cache
  hides any disk. Cold builds from an empty cache are CPU-bound (ratio ~1) and
  are not measured.

Run as root: ``.venv/bin/python bench/slow_storage.py [--runs 5] [--latencies 0.1 0.5 1]``
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.goproxy_tree import (  # noqa: E402
    APP_GOMOD,
    APP_MAIN,
    StaticUpstream,
    build_tree,
    standard_modules,
)
from tests.sandbox import Sandbox, SandboxHost, missing_requirement  # noqa: E402
from tests.sandbox_storage import HDD_IOPS, Hdd, Slow9p, Storage  # noqa: E402

USER = "dev"
FAST = "/home/dev/fast"  # on the host's root: an overlay on this machine's ext4
SLOW9P_DIR = "/mnt/c/Users/dev"
HDD_DIR = "/data/dev"
# The dependency zip's size: enough bytes to read, small enough to build fast.
BIG_BYTES = 256 << 10


def sh(host: SandboxHost, cmd: str, user: str = USER) -> str:
    out = host.run(cmd, user=user, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"{host.name}: {cmd}: {out.stderr.strip()[-800:]}")
    return out.stdout


def timed(host: SandboxHost, env: str, cmd: str) -> float:
    """Seconds one build takes, timed on the host (ssh's own cost left out)."""
    out = sh(host, f"cd ~/app && export {env} && s=$(date +%s%N) && {cmd} >/dev/null && "
                   "e=$(date +%s%N) && echo $(( (e - s) / 1000 ))")  # fmt: skip
    return int(out.split()[-1]) / 1e6


def go_env(gocache: str, gomodcache: str, proxy: str) -> str:
    return (f"GOCACHE={gocache} GOMODCACHE={gomodcache} GOPROXY={proxy} GOSUMDB=off "
            "GOFLAGS=-mod=mod GOTOOLCHAIN=local GOTELEMETRY=off")  # fmt: skip


def prepare(host: SandboxHost, proxy: str, dirs: list[str]) -> None:
    host.add_user(USER)
    host.link_go()
    for d in dirs:
        sh(host, f"mkdir -p {d} && chown {USER}: {d}", user="root")
    sh(host, f"mkdir -p ~/app && cd ~/app && printf %s {shlex.quote(APP_GOMOD)} > go.mod && "
             f"printf %s {shlex.quote(APP_MAIN)} > main.go")  # fmt: skip


def pairs(runs: int, a: Callable[[], float], b: Callable[[], float]) -> tuple[list[float], ...]:
    """``runs`` timings of each, interleaved A B, B A, A B ... so drift hits both alike."""
    got_a: list[float] = []
    got_b: list[float] = []
    for i in range(runs):
        for which in "ab" if i % 2 == 0 else "ba":
            (got_a if which == "a" else got_b).append((a if which == "a" else b)())
    return got_a, got_b


def summary(slow: list[float], fast: list[float]) -> dict[str, Any]:
    s, f = statistics.median(slow), statistics.median(fast)
    return {
        "slow_s": round(s, 3),
        "fast_s": round(f, 3),
        "ratio": round(s / f, 1),
        "slow_runs": [round(x, 3) for x in slow],
        "fast_runs": [round(x, 3) for x in fast],
    }


# A new constant in package main each time: one compile of main, one link.
INCREMENTAL = "printf 'package main\\nconst stamp = \"%s\"\\n' $(date +%N) > stamp.go && "


BUILD = "go build -o /tmp/app ."


def bench_slow9p(host: SandboxHost, proxy: str, runs: int) -> dict[str, Any]:
    slow, fast = SLOW9P_DIR, FAST
    prepare(host, proxy, [slow, fast])
    env = {
        "GOMODCACHE": (go_env(f"{fast}/cache", f"{slow}/mod", proxy),
                       go_env(f"{fast}/cache", f"{fast}/mod", proxy)),
        "GOCACHE": (go_env(f"{slow}/cache", f"{fast}/mod", proxy),
                    go_env(f"{fast}/cache2", f"{fast}/mod", proxy)),
    }  # fmt: skip
    out: dict[str, Any] = {}
    for key, (on_slow, on_fast) in env.items():
        for e in (on_slow, on_fast):  # fill the caches: cold builds are CPU-bound, not measured
            timed(host, e, BUILD)
        out[f"{key} noop"] = summary(
            *pairs(runs, partial(timed, host, on_slow, BUILD), partial(timed, host, on_fast, BUILD))
        )
    return out


def bench_hdd(host: SandboxHost, proxy: str, runs: int) -> dict[str, Any]:
    assert host.prepared is not None and host.cgroups is not None
    disk, cgroups = host.prepared.disks[0], host.cgroups
    slow, fast = HDD_DIR, FAST
    prepare(host, proxy, [slow, fast])

    def cold(env: str, throttled: bool, cmd: str) -> float:
        """One build right after a remount, with the disk throttled or not (0: no limit)."""
        read, write = (disk.spec.read_iops, disk.spec.write_iops) if throttled else (0, 0)
        cgroups.throttle(disk.majmin, read, write)
        host.cold_caches()
        return timed(host, env, cmd)

    out: dict[str, Any] = {}
    cases = {
        "GOCACHE": go_env(f"{slow}/cache", f"{fast}/mod", proxy),
        "GOMODCACHE": go_env(f"{fast}/cache", f"{slow}/mod", proxy),
    }
    for key, env in cases.items():
        timed(host, env, BUILD)  # fill
        out[f"{key} noop cold"] = summary(
            *pairs(runs, partial(cold, env, True, BUILD), partial(cold, env, False, BUILD))
        )
    env, step = cases["GOCACHE"], INCREMENTAL + BUILD
    out["GOCACHE incremental cold"] = summary(
        *pairs(runs, partial(cold, env, True, step), partial(cold, env, False, step))
    )
    cgroups.throttle(disk.majmin, disk.spec.read_iops, disk.spec.write_iops)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="timed builds per variant (medians)")
    p.add_argument(
        "--latencies",
        type=float,
        nargs="+",
        default=[0.1, 0.5, 1.0],
        help="slow9p milliseconds per metadata operation, one host each",
    )
    p.add_argument("--systemd", action="store_true", help="systemd hosts instead of plain ones")
    args = p.parse_args()
    reason = missing_requirement()
    if reason:
        raise SystemExit(reason)
    storage: list[list[Storage]] = [[Slow9p(latency_ms=ms)] for ms in args.latencies]
    storage.append([Hdd(path="/data", read_iops=HDD_IOPS)])
    result: dict[str, Any] = {"runs": args.runs, "systemd": args.systemd, "hdd_iops": HDD_IOPS,
                              "slow9p": {}, "hdd": {}}  # fmt: skip
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        tree = build_tree(Path(tmp) / "upstream", standard_modules(big_bytes=BIG_BYTES))
        with StaticUpstream(tree) as up, Sandbox(len(storage), systemd=args.systemd,
                                                  storage=storage) as box:  # fmt: skip
            for ms, host in zip(args.latencies, box.hosts, strict=False):
                result["slow9p"][f"{ms} ms"] = bench_slow9p(host, up.url, args.runs)
            result["hdd"] = bench_hdd(box.hosts[-1], up.url, args.runs)
    result["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
