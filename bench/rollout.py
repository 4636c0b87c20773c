"""Benchmark: is orchestration the bottleneck of a rollout? Prints JSON.

    .venv/bin/python -m bench.rollout [--runs N] [--hosts 24] [--facts-hosts 50]

On sandbox hosts (tests/sandbox.py; needs root), each a developer user with a GOCACHE on
a size-capped tmpfs (so apply really changes things), verify with ``--bench none``
(benchmarks on sandbox hosts share this machine's two cores: they say nothing of a real
fleet). Every run starts fresh hosts, so every apply is a first apply.

* ``apply_all``: ``gotune apply INV --yes --json --no-verify`` of all hosts at once;
* ``rollout``: ``gotune rollout INV --waves 1,25%,100% --bench none --yes --json``, and
  each wave's time from its JSON;
* ``wave_floor``: what one wave costs however few hosts it has: the in-process time of
  a one-host wave (connect, facts, plan, prepare, run, verify, gate, state writes), from
  a rollout of one fresh host; the target adds one per wave:
  ``rollout <= 1.5 x (apply_all + waves x wave_floor)``;
* ``facts``: ``gotune facts INV --json`` on ``--facts-hosts`` hosts against the floor of
  the same number of parallel ``ssh host true``; the target is 1.5x that floor;
* ``control_rss_mib``: peak RSS of the control process of a rollout of
  ``--facts-hosts`` hosts (waves 1,25%,100%).

Each time is the median of N runs (interleaved: apply, rollout, floor, facts); ratios
come from the medians.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.facts import gotune_facts, ssh_true  # noqa: E402
from tests.sandbox import Sandbox  # noqa: E402

TARGET_RATIO = 1.5
WAVES = "1,25%,100%"
DATA = {"gotune_users": ["dev"], "gotune_gocache_tmpfs": "always", "gotune_tmpfs_max_gib": 1}
DEFAULT_RUNS = 3
# Reports the peak RSS of the command it runs (the rollout's control process).
PEAK_RSS = ("import resource, subprocess, sys; "
            "out = subprocess.run(sys.argv[1:], capture_output=True); "
            "print(out.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


@contextlib.contextmanager
def fleet(count: int) -> Iterator[Sandbox]:
    """Fresh hosts, each with a developer user and Go on its PATH; stopped afterwards."""
    with Sandbox(count, data=DATA) as box:
        for host in box.hosts:
            host.add_user("dev")
            host.link_go()
        yield box


def gotune(*args: str) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "gotune", *args], capture_output=True,
                         text=True, cwd=REPO, timeout=1800)  # fmt: skip
    took = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"gotune {args[0]} exited {out.returncode}: {out.stderr[-500:]}")
    doc: dict[str, Any] = json.loads(out.stdout)
    return took, doc


def apply_all(count: int) -> float:
    with fleet(count) as box:
        took, doc = gotune("apply", str(box.inventory), "--yes", "--json", "--no-verify")
        assert all(h["ok"] and h["changed"] > 0 for h in doc["hosts"].values())
        return took


def rollout(count: int) -> tuple[float, list[float]]:
    with fleet(count) as box:
        took, doc = gotune("rollout", str(box.inventory), "--waves", WAVES, "--bench", "none",
                           "--yes", "--json")
        return took, [w["elapsed_s"] for w in doc["waves"]]


def wave_floor() -> float:
    with fleet(1) as box:
        _, doc = gotune("rollout", str(box.inventory), "--bench", "none", "--yes", "--json")
        return float(doc["waves"][0]["elapsed_s"])


def peak_rss_mib(count: int) -> float:
    with fleet(count) as box:
        argv = [sys.executable, "-m", "gotune", "rollout", str(box.inventory), "--waves", WAVES,
                "--bench", "none", "--yes", "--json"]
        out = subprocess.run([sys.executable, "-c", PEAK_RSS, *argv], capture_output=True,
                             text=True, cwd=REPO, timeout=1800, check=True)  # fmt: skip
        code, kib = out.stdout.split()
        if code != "0":
            raise RuntimeError(f"rollout of {count} hosts exited {code}")
        return round(int(kib) / 1024, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--hosts", type=int, default=24)
    parser.add_argument("--facts-hosts", type=int, default=50)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {k: [] for k in (
        "apply_all", "rollout", "wave_floor", "ssh_true", "facts")}  # fmt: skip
    waves: list[list[float]] = []
    with Sandbox(args.facts_hosts) as many:
        for _ in range(args.runs):
            samples["apply_all"].append(apply_all(args.hosts))
            took, per_wave = rollout(args.hosts)
            samples["rollout"].append(took)
            waves.append(per_wave)
            samples["wave_floor"].append(wave_floor())
            samples["ssh_true"].append(ssh_true(many.hosts))
            samples["facts"].append(gotune_facts(many.inventory))
    rss = peak_rss_mib(args.facts_hosts)
    median = {k: round(statistics.median(v), 2) for k, v in samples.items()}
    n_waves = len(waves[0])
    bound = median["apply_all"] + n_waves * median["wave_floor"]
    result = {
        "runs": args.runs, "statistic": "median seconds (min, max in spread)",
        "hosts": args.hosts, "waves": WAVES, "facts_hosts": args.facts_hosts,
        "median": median,
        "spread": {k: [round(min(v), 2), round(max(v), 2)] for k, v in samples.items()},
        "rollout_waves_s": [round(statistics.median(w[i] for w in waves), 2)
                            for i in range(n_waves)],
        "rollout_vs_apply_plus_floors": round(median["rollout"] / bound, 2),
        "facts_vs_ssh_true": round(median["facts"] / median["ssh_true"], 2),
        "target_ratio": TARGET_RATIO,
        "control_rss_mib": rss,
    }  # fmt: skip
    result["meets_target"] = (result["rollout_vs_apply_plus_floors"] <= TARGET_RATIO
                              and result["facts_vs_ssh_true"] <= TARGET_RATIO)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
