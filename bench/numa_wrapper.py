"""Benchmark: what a gotune NUMA wrapper costs per call, on this machine. Prints JSON.

    .venv/bin/python bench/numa_wrapper.py [--pairs N] [--go PATH]

Runs the real ``go`` against the wrapper from ``templates/numa-wrapper.sh.j2``
(policy ``--cpunodebind=0 --preferred=0``, which binds for real on node 0) with
``gotune/numa_measure.py``'s interleaved ABBA pairs and verify's verdict, for:

* ``go version``: a ~10 ms call, so the wrapper's own cost (sh, the bind probe
  ``numactl ... -- true``, then ``numactl`` exec) shows;
* ``go list std``: a ~0.2 s call with a warm cache, where that cost is noise.

On a 1-node machine no policy can make ``go`` faster: this measures the price a
wrapper must earn back, which is why apply keeps only wrappers verify calls faster.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gotune.agent.numa_measure import measure  # noqa: E402
from gotune.operations.numa import wrapper_script  # noqa: E402

DEFAULT_PAIRS = 9
WORKLOADS = {"go version": ["version"], "go list std (warm)": ["list", "std"]}


def run(go: str, pairs: int) -> dict[str, Any]:
    user = pwd.getpwuid(os.geteuid()).pw_name
    with tempfile.TemporaryDirectory(prefix="gotune-bench-numa-") as tmp:
        wrap_dir = Path(tmp) / "bin"
        wrap_dir.mkdir()
        wrapper = wrap_dir / "go"
        wrapper.write_text(
            wrapper_script(
                "go", ["--cpunodebind=0", "--preferred=0"], [0], "bench", go, bin_dir=str(wrap_dir)
            )
        )
        wrapper.chmod(0o755)
        results = {}
        for name, args in WORKLOADS.items():
            r = measure(str(wrapper), go, args, user, pairs, cwd=tmp)
            overhead_ms = (r["wrapped_median_s"] - r["plain_median_s"]) * 1000
            results[name] = {
                "plain_median_s": r["plain_median_s"],
                "wrapped_median_s": r["wrapped_median_s"],
                "overhead_ms": round(overhead_ms, 2),
                "overhead_pct": round(100 * overhead_ms / 1000 / r["plain_median_s"], 1),
                "verdict": r["verdict"],
                "kept": r["keep"],
                "pairs": r["pairs"],
            }
    return {
        "benchmark": "numa_wrapper",
        "numactl": shutil.which("numactl"),
        "cpus": os.cpu_count(),
        "method": f"median of {pairs} interleaved ABBA pairs after one warm-up pair",
        "results": results,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--pairs", type=int, default=DEFAULT_PAIRS)
    p.add_argument("--go", default=shutil.which("go") or str(REPO / ".venv/bin/go"))
    args = p.parse_args()
    # The real binary, not a launcher script in front of it (the venv's go is one).
    goroot = subprocess.run([args.go, "env", "GOROOT"], capture_output=True, text=True, check=False)
    go = os.path.join(goroot.stdout.strip(), "bin", "go")
    if goroot.returncode != 0 or not os.access(go, os.X_OK):
        print(json.dumps({"error": f"{go}: no go binary"}))
        return 1
    if shutil.which("numactl") is None:
        print(json.dumps({"error": "numactl is not installed"}))
        return 1
    print(json.dumps(run(go, args.pairs), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
