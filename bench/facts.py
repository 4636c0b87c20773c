"""Benchmark: what `gotune facts` costs per host, next to the SSH floor. Prints JSON.

    .venv/bin/python -m bench.facts [--runs N]

Measures, on sandbox hosts (tests/sandbox.py; needs root):

* commands per host for the hardware facts, counted by wrapping each pyinfra
  host's ``run_shell_command`` while ``host.get_fact(Machine)`` runs (must be 1);
* wall time of ``gotune facts INV --json`` (a fresh process, as a user runs it)
  against 1 and against 10 hosts;
* the SSH floor in the same run: 1 and 10 parallel plain ``ssh host true``;
* a second floor, the collector's own cost: 1 and 10 parallel plain
  ``ssh host sh -c COLLECTOR`` (the same command gotune sends, no pyinfra, no
  gotune), so what gotune adds shows apart from what the collector's shell
  work costs on the hosts (here all sharing this machine's cores);
* also the in-process cost (connect + fact, no interpreter start-up), to show
  where the time goes;
* the collector run locally: CPU seconds (median) and processes it starts
  (execve calls, counted with strace when it is installed).

Each figure is the median of N runs, interleaved so drift hits all alike.
The target: 10 hosts within 1.5x the 10-host SSH floor (``ssh true``); the
ratio against the collector floor is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gotune.facts.collect import build_command  # noqa: E402
from gotune.facts.machine import Machine  # noqa: E402
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


def ssh_collector(hosts: list[SandboxHost], user: str = "root") -> float:
    """Seconds until every host has run the collector over plain ssh, all in parallel."""
    command = build_command("/", user)  # a fresh one per run, as gotune builds it
    with tempfile.TemporaryDirectory() as tmp:
        outs = [Path(tmp) / f"{i}.out" for i in range(len(hosts))]
        start = time.perf_counter()
        procs = []
        for h, out in zip(hosts, outs, strict=True):
            with out.open("wb") as sink:
                argv = [*h.ssh_argv(), "sh", "-c", shlex.quote(command)]
                procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=sink))
        for proc in procs:
            if proc.wait(timeout=120) != 0:
                raise RuntimeError("ssh collector failed")
        took = time.perf_counter() - start
        if not all(out.read_bytes().startswith(b"@@gotune 1$") for out in outs):
            raise RuntimeError("ssh collector printed no facts")
    return took


def collector_local(runs: int) -> dict[str, Any]:
    """The collector run here: median CPU seconds of its processes, and their execve count."""
    command = build_command("/", "root")
    cpu: list[float] = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(["sh", "-c", command], stdout=subprocess.DEVNULL, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    result: dict[str, Any] = {"cpu_s": round(statistics.median(cpu), 3), "execve": None}
    if shutil.which("strace"):
        with tempfile.TemporaryDirectory() as tmp:
            trace = Path(tmp) / "trace"
            subprocess.run(
                ["strace", "-f", "-e", "trace=execve", "-o", str(trace), "sh", "-c", command],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
            calls = [line for line in trace.read_text().splitlines() if "execve(" in line]
            result["execve"] = len(calls)  # PATH look-ups that failed included
            result["execve_succeeded"] = sum("ENOENT" not in line for line in calls)
    return result


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
    with connected(str(inventory)) as conn:
        state = conn.state
        for host in state.activated_hosts:
            original = host.run_shell_command

            def counting(
                *args: Any, _run: Any = original, _name: str = host.name, **kw: Any
            ) -> Any:
                counts[_name] = counts.get(_name, 0) + 1
                return _run(*args, **kw)

            host.run_shell_command = counting  # type: ignore[method-assign]
        hosts = state.activated_hosts
        jobs = [state.pool.spawn(h.get_fact, Machine, users=["root"]) for h in hosts]
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
            "ssh_collector_1",
            "ssh_collector_10",
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
            samples["ssh_collector_1"].append(ssh_collector(one.hosts))
            samples["ssh_collector_10"].append(ssh_collector(ten.hosts))
            samples["gotune_facts_1"].append(gotune_facts(one.inventory))
            samples["gotune_facts_10"].append(gotune_facts(ten.inventory))
            took, counts = in_process(one.inventory)
            samples["in_process_1"].append(took)
            took, counts = in_process(ten.inventory)
            samples["in_process_10"].append(took)
            commands = counts
    local = collector_local(args.runs)
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
        "ratio_gotune_facts_10_vs_ssh_collector_10": round(
            median["gotune_facts_10"] / median["ssh_collector_10"], 2
        ),
        "ratio_in_process_10_vs_ssh_collector_10": round(
            median["in_process_10"] / median["ssh_collector_10"], 2
        ),
        "ratio_ssh_collector_10_vs_ssh_true_10": round(
            median["ssh_collector_10"] / median["ssh_true_10"], 2
        ),
        "collector_on_this_machine": local,
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio <= TARGET_RATIO,
        "profiles": profiles,
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
