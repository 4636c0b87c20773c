"""Benchmark sandbox host start and teardown; prints one JSON document.

For each host count, starts a Sandbox ``--rounds`` times and reports the median
(and min/max) of: per-host start time (launch to sshd listening, hosts started
concurrently), the whole ``start()`` (keys, dirs, address claim, launch, wait),
the first ssh round trip, and ``close()`` (kill by PID, remove dirs). Profiles
are unpacked once per process, so the profile case measures a warm cache.
Target (issue 2 section 4): well under one second per host.

Run as root: ``.venv/bin/python bench/sandbox_start.py [--counts 1 4] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.sandbox import Sandbox, missing_requirement  # noqa: E402

FOUR_NODES = "64fake-4n2s2ca2c2t"


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def measure(count: int, rounds: int, profile: str | None) -> dict[str, Any]:
    per_host: list[float] = []
    start: list[float] = []
    first_ssh: list[float] = []
    close: list[float] = []
    for _ in range(rounds):
        box = Sandbox(count, profiles=[profile] * count)
        began = time.monotonic()
        box.start()
        start.append(time.monotonic() - began)
        try:
            per_host += [h.start_seconds for h in box.hosts if h.start_seconds is not None]
            began = time.monotonic()
            out = box.hosts[0].run("true")
            first_ssh.append(time.monotonic() - began)
            if out.returncode != 0:
                raise SystemExit(f"ssh into {box.hosts[0].name} failed: {out.stderr.strip()}")
        finally:
            began = time.monotonic()
            box.close()
            close.append(time.monotonic() - began)
    return {
        "hosts": count,
        "profile": profile,
        "rounds": rounds,
        "host_start_seconds": spread(per_host),
        "sandbox_start_seconds": spread(start),
        "first_ssh_seconds": spread(first_ssh),
        "close_seconds": spread(close),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    reason = missing_requirement()
    if reason:
        print(json.dumps({"error": reason}))
        return 1
    # Unpack the profile once before timing (a test session pays this once, too).
    with Sandbox(1, profiles=[FOUR_NODES]):
        pass
    results = [
        measure(count, args.rounds, profile)
        for profile in (None, FOUR_NODES)
        for count in args.counts
    ]
    print(json.dumps({"benchmark": "sandbox_start", "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
