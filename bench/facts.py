"""Benchmark: what `gotune facts` costs per host, next to the SSH floor. Prints JSON.

    .venv/bin/python -m bench.facts [--runs N]

Measures, on sandbox hosts (tests/sandbox.py; needs root):

* commands per host for the hardware facts, counted by wrapping each pyinfra
  host's ``run_shell_command`` while ``host.get_fact(Machine)`` runs (must be 1);
* wall time of ``gotune facts INV --json`` (a fresh process, as a user runs it)
  against 1 and against 10 hosts;
* the SSH floor in the same run: 1 and 10 parallel plain ``ssh host true``;
* also the in-process cost (connect + fact, no interpreter start-up), to show
  where the time goes.

Each figure is the median of N runs, interleaved so drift hits all alike.
The target: 10 hosts within 1.5x the 10-host SSH floor.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from facts.machine import Machine  # noqa: E402
from gotune.inventory import connected  # noqa: E402
from tests.sandbox import Sandbox, SandboxHost  # noqa: E402

# The issue's target: ten hosts' facts within this factor of ten parallel `ssh true`.
TARGET_RATIO = 1.5
DEFAULT_RUNS = 7


def ssh_true(hosts: list[SandboxHost]) -> float:
    """Seconds until every host has answered a plain `ssh host true`, all in parallel."""
    start = time.perf_counter()
    procs = [subprocess.Popen([*h.ssh_argv(), "true"], stdin=subprocess.DEVNULL) for h in hosts]
    for proc in procs:
        if proc.wait(timeout=60) != 0:
            raise RuntimeError("ssh true failed")
    return time.perf_counter() - start


def gotune_facts(inventory: Path) -> float:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "gotune", "facts", str(inventory), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )
    took = time.perf_counter() - start
    if out.returncode != 0 or not json.loads(out.stdout).get("hosts"):
        raise RuntimeError(f"gotune facts failed: {out.stderr.strip()}")
    return took


def in_process(inventory: Path) -> tuple[float, list[int]]:
    """Connect and fetch the Machine fact in this process; (seconds, commands per host)."""
    start = time.perf_counter()
    counts: dict[str, int] = {}
    with connected(str(inventory)) as state:
        for host in state.activated_hosts:
            original = host.run_shell_command

            def counting(
                *args: Any, _run: Any = original, _name: str = host.name, **kw: Any
            ) -> Any:
                counts[_name] = counts.get(_name, 0) + 1
                return _run(*args, **kw)

            host.run_shell_command = counting  # type: ignore[method-assign]
        jobs = [state.pool.spawn(h.get_fact, Machine, user="root") for h in state.activated_hosts]
        for job in jobs:
            job.join(timeout=120)
            if not job.successful():
                raise RuntimeError("fact failed")
    return time.perf_counter() - start, sorted(counts.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    args = parser.parse_args()
    profiles = [
        None,
        "64fake-4n2s2ca2c2t",
        "20em64t-hybrid-1p6c2t+2ca4co1t",
        "nvidia-dgx-gb10",
        "256ppc-8n8s4t",
        None,
        "32intel64-2p8co2t+8ve",
        "16amd64-8n2c",
        None,
        "2arm-2c",
    ]
    samples: dict[str, list[float]] = {
        k: []
        for k in (
            "ssh_true_1",
            "ssh_true_10",
            "gotune_facts_1",
            "gotune_facts_10",
            "in_process_1",
            "in_process_10",
        )
    }
    commands: list[int] = []
    with Sandbox(1) as one, Sandbox(10, profiles=profiles) as ten:
        for _ in range(args.runs):
            samples["ssh_true_1"].append(ssh_true(one.hosts))
            samples["ssh_true_10"].append(ssh_true(ten.hosts))
            samples["gotune_facts_1"].append(gotune_facts(one.inventory))
            samples["gotune_facts_10"].append(gotune_facts(ten.inventory))
            took, counts = in_process(one.inventory)
            samples["in_process_1"].append(took)
            took, counts = in_process(ten.inventory)
            samples["in_process_10"].append(took)
            commands = counts
    median = {k: round(statistics.median(v), 3) for k, v in samples.items()}
    spread = {k: [round(min(v), 3), round(max(v), 3)] for k, v in samples.items()}
    ratio = median["gotune_facts_10"] / median["ssh_true_10"]
    result = {
        "runs": args.runs,
        "statistic": "median seconds (min, max in spread)",
        "commands_per_host": commands,
        "one_command_per_host": bool(commands) and set(commands) == {1},
        "median_s": median,
        "spread_s": spread,
        "ratio_gotune_facts_10_vs_ssh_true_10": round(ratio, 2),
        "ratio_in_process_10_vs_ssh_true_10": round(
            median["in_process_10"] / median["ssh_true_10"], 2
        ),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio <= TARGET_RATIO,
        "profiles": profiles,
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
