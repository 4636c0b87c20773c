"""How long the verify runner takes to start and answer, by the ways it can reach a host.

Every way answers the smallest request (append one line to a history file), so
the figures are start-up: the interpreter, the runner's imports, the round trips.
Ways are interleaved over ``--rounds`` and reported as median/min/max seconds:

- ``process``: ``python3 gotune.pyz verify-runner REQUEST`` (the zipapp alone);
- ``installed``: through pyinfra on ``@local`` with ``gotune.verify.remote`` when the
  host's agent is this build (one command);
- ``uploaded``: the same when it is not (mktemp, upload, chmod, run, remove);
- with ``--stdin-runner FILE`` (a one-file runner from an older gotune):
  ``stdin-process`` (``python3 - REQUEST < FILE``) and ``stdin-pyinfra`` (the same
  command through pyinfra, the runner as its stdin), how verify used to start.

    .venv/bin/python bench/agent_start.py [--rounds 15] [--stdin-runner OLD/runner.py]
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gotune.agent.paths import SYSTEM_PYTHONS  # noqa: E402
from gotune.inventory import connected  # noqa: E402
from gotune.verify.remote import HostAgent, host_agent  # noqa: E402
from gotune.zipapp import build  # noqa: E402

PYTHON = SYSTEM_PYTHONS[0]


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4)}


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - start
    if isinstance(out, dict) and "recorded" not in out:
        raise SystemExit(f"the runner did not answer: {out}")
    return elapsed


def answer(stdout: str) -> dict[str, Any]:
    line = stdout.strip().splitlines()[-1] if stdout.strip() else "GOTUNE-VERIFY {}"
    data: dict[str, Any] = json.loads(line.removeprefix("GOTUNE-VERIFY "))
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--stdin-runner", type=Path, metavar="FILE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gotune-agent-bench-") as tmp:
        report = measure(Path(tmp), args.rounds, args.stdin_runner)
    print(json.dumps(report, indent=2))


def measure(work: Path, rounds: int, stdin_runner: Path | None) -> dict[str, Any]:
    """Seconds per way over ``rounds`` interleaved rounds (after one warm-up round)."""
    pyz = work / "gotune.pyz"
    build(pyz)
    request = json.dumps({"mode": "record", "path": str(work / "h.jsonl"), "record": {}})
    source = stdin_runner.read_text() if stdin_runner else None
    with connected("@local") as conn:
        (host,) = conn.hosts
        ways: dict[str, Callable[[], Any]] = {
            "process": lambda: answer(subprocess.run(
                [PYTHON, str(pyz), "verify-runner", request], capture_output=True,
                text=True, check=False).stdout),
            "installed": lambda: HostAgent(host, installed=str(pyz)).run(json.loads(request)),
            "uploaded": lambda: _uploaded(host, json.loads(request)),
        }
        if source is not None:
            ways["stdin-process"] = lambda: answer(subprocess.run(
                [PYTHON, "-", request], input=source, capture_output=True, text=True,
                check=False).stdout)
            ways["stdin-pyinfra"] = lambda: answer(host.run_shell_command(
                f"{PYTHON} - {shlex.quote(request)}", _stdin=source)[1].stdout)
        samples: dict[str, list[float]] = {name: [] for name in ways}
        for i in range(rounds + 1):
            names = list(ways) if i % 2 == 0 else list(reversed(ways))
            for name in names:
                elapsed = timed(ways[name])
                if i > 0:  # the first round warms the page cache and pyinfra's connection
                    samples[name].append(elapsed)
    return {"rounds": rounds, "seconds": {n: spread(v) for n, v in samples.items()}}


def _uploaded(host: Any, request: dict[str, Any]) -> dict[str, Any]:
    with host_agent(host) as agent:
        agent.installed = "/nonexistent/gotune.pyz"
        return agent.run(request)


if __name__ == "__main__":
    main()
