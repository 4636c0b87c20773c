"""Measure a NUMA wrapper against the plain tool; keep it only if it beats the noise.

Runs on the target from the agent zipapp (``gotune numa-measure``, standard
library only): ``operations/numa.py`` runs it as root, and it runs the workload
as the developer user. Runs are interleaved in ABBA order
(plain, wrapped, wrapped, plain, ...) so drift (a warming page cache, a thermal limit)
hits both arms alike; the first pair is a warm-up and is not counted.

The keep rule is verify's: the wrapper stays only when verify would call it "faster"
— enough runs, the two arms' ranges do not overlap and the medians differ by more
than verify's noise fraction. The figures go to the record (``/var/lib/gotune/numa.json``,
key ``tools.<tool>``) for the plan and the report; with ``--remove-unhelpful`` a wrapper
that does not beat the noise is deleted.

Usage::

    python3 /opt/gotune/gotune.pyz numa-measure --tool go --wrapper /usr/local/lib/gotune/bin/go \\
        --real /usr/local/go/bin/go --user alice --numactl-args=--interleave=0,1 \\
        --record /var/lib/gotune/numa.json --remove-unhelpful -- build std
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from gotune.agent.fsutil import write_atomic
from gotune.agent.runas import account, run_timed
from gotune.agent.stats import FASTER, MIN_RUNS_FOR_VERDICT, NOISE_FRACTION, summarize
from gotune.agent.stats import verdict as ab_verdict
from gotune.errors import UsageError

# Seven counted pairs: above verify's minimum for a verdict, and a 0.4 s
# `go build std` keeps the whole measurement under ten seconds.
DEFAULT_PAIRS = max(7, MIN_RUNS_FOR_VERDICT)
RECORD_VERSION = 1


def verdict(plain: Sequence[float], wrapped: Sequence[float]) -> dict[str, Any]:
    """The keep rule over paired timings (seconds), with the figures behind it."""
    if len(plain) != len(wrapped) or not plain:
        raise ValueError("need the same number (at least one) of plain and wrapped runs")
    p, w = summarize(list(plain)), summarize(list(wrapped))
    assert p is not None and w is not None
    ab = ab_verdict(w, p)
    ratios = [b / a if a > 0 else 1.0 for a, b in zip(plain, wrapped, strict=True)]
    return {
        "pairs": len(plain),
        "plain_median_s": round(p.median_s, 6),
        "wrapped_median_s": round(w.median_s, 6),
        "plain_range_s": [round(p.min_s, 6), round(p.max_s, 6)],
        "wrapped_range_s": [round(w.min_s, 6), round(w.max_s, 6)],
        "gain": round(1.0 - statistics.median(ratios), 6),  # per pair: 0.1 = 10% faster
        "threshold": NOISE_FRACTION,
        "min_pairs": MIN_RUNS_FOR_VERDICT,
        "verdict": ab,
        "keep": ab == FASTER,
    }


def measure(
    wrapper: str,
    real: str,
    workload: list[str],
    user: str,
    pairs: int = DEFAULT_PAIRS,
    cwd: str | None = None,
) -> dict[str, Any]:
    """Interleaved A/B runs of ``wrapper`` and ``real`` with the same arguments, and the verdict."""
    who = account(user, real)
    cwd = cwd or who.home
    plain: list[float] = []
    wrapped: list[float] = []
    for i in range(pairs + 1):
        order = [(real, plain), (wrapper, wrapped)]
        if i % 2:
            order.reverse()
        for exe, sink in order:
            elapsed = run_timed([exe, *workload], who, cwd)
            if i > 0:  # the first pair warms caches (GOCACHE, page cache) and is not counted
                sink.append(elapsed)
    result = verdict(plain, wrapped)
    result["plain_s"] = [round(t, 6) for t in plain]
    result["wrapped_s"] = [round(t, 6) for t in wrapped]
    return result


def sha256_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def read_record(path: str) -> dict[str, Any]:
    """The record; a missing or garbled file is an empty record (measure again)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {"version": RECORD_VERSION, "tools": {}}
    if not isinstance(data, dict) or not isinstance(data.get("tools"), dict):
        return {"version": RECORD_VERSION, "tools": {}}
    return data


def write_record(path: str, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def run(args: argparse.Namespace) -> int:
    """``gotune numa-measure``: measure, update the record, print the tool's entry as JSON."""
    pairs = DEFAULT_PAIRS if args.pairs is None else args.pairs
    if pairs < 1:
        raise UsageError("--pairs must be at least 1")
    entry: dict[str, Any] = {
        "tool": args.tool,
        "numactl_args": args.numactl_args.split(),
        "workload": args.workload,
        "real": args.real,
        "wrapper_sha256": sha256_file(args.wrapper),
        "measured_at": time.time(),
    }
    try:
        entry.update(
            measure(args.wrapper, args.real, args.workload, args.user, pairs, args.cwd)
        )
    except (OSError, RuntimeError, KeyError, subprocess.TimeoutExpired) as exc:
        # A workload that cannot run shows nothing: the wrapper is not kept.
        entry.update({"keep": False, "error": str(exc).splitlines()[0][:300]})
    record = read_record(args.record)
    record["version"] = RECORD_VERSION
    record["tools"][args.tool] = entry
    if not entry["keep"] and args.remove_unhelpful:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.wrapper)
        entry["removed"] = True
    write_record(args.record, record)
    print(json.dumps(entry, sort_keys=True))
    return 0
