"""The mirror's HTTP server under slow clients: before (a git revision) and after (this tree).

Each server is the real ``gotune mirror serve --offline`` in its own process, on
loopback, over a cache holding a few modules (tests/goproxy_tree.py). Then:

- ``slow``: ``--clients`` connections (3000) each send the start of a request head
  and never finish it. After ``--hold`` seconds: the server's threads and RSS
  (/proc/PID/status), and the latency of ``/healthz`` and of a cached ``.mod``
  (``--probes`` requests each, one at a time, a new connection each);
- ``disconnect``: all of them close at once; ``/healthz`` is probed back to back
  for ``--after`` seconds: the slowest answer, and how long until one answered.

Both servers run the same steps in the same run, one after the other, so the
figures compare (the machine is shared; absolute latencies are noisy). ``site``: the
same steps against the team build cache (``gotune buildcache serve``, the same server
core), its cached artefact one stored output.

    flock /tmp/gotune-bench.lock .venv/bin/python bench/http_load.py [--before 2f3e5c2] \
        [--clients 3000]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.goproxy_tree import build_tree, standard_modules  # noqa: E402

PY = sys.executable
CACHED = "/example.com/!big!corp/!lib/@v/v1.1.0.mod"
# A probe that takes longer than this counts as not answered.
PROBE_TIMEOUT_S = 30.0
# File descriptors the client side needs: one per slow client, with room.
FD_HEADROOM = 256


def checkout(rev: str, into: Path) -> Path:
    """The tree at ``rev`` (git archive), to run its mirror unchanged."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True,
                          check=True).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=data, check=True)
    return into


@contextmanager
def mirror(code: Path, cache: Path) -> Iterator[tuple[int, tuple[str, int]]]:
    """The mirror of the tree at ``code``, offline over ``cache``: (pid, address)."""
    with server(code, ["mirror", "serve", "--offline", "--cache-dir", str(cache)],
                cache) as found:
        yield found


@contextmanager
def site(code: Path, cache: Path) -> Iterator[tuple[int, tuple[str, int]]]:
    """The team build cache of the tree at ``code`` over ``cache``: (pid, address)."""
    with server(code, ["buildcache", "serve", "--cache-dir", str(cache)], cache) as found:
        yield found


def site_tree(cache: Path) -> str:
    """A build cache holding one output (as a builder's PUT leaves it); its GET path."""
    data = os.urandom(64 * 1024)
    output = hashlib.sha256(data).hexdigest()
    action = hashlib.sha256(b"bench action").hexdigest()
    for kind, name, body in (("objects", output, data),
                             ("actions", action, f"v1 {output} {len(data)} 1\n".encode())):
        path = cache / kind / name[:2] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return f"/cache/{action}"


@contextmanager
def server(code: Path, argv: list[str], cache: Path) -> Iterator[tuple[int, tuple[str, int]]]:
    """``gotune ARGV`` of the tree at ``code`` on a free loopback port: (pid, address)."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    proc = subprocess.Popen(
        [PY, "-m", "gotune", *argv, "--listen", "127.0.0.1:0", "--json", "--wear-state",
         str(cache.parent / "none.json")],
        stdout=subprocess.PIPE, text=True, cwd=code, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = json.loads(proc.stdout.readline())["url"]
        host, port = url.removeprefix("http://").rsplit(":", 1)
        yield proc.pid, (host, int(port))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def proc_status(pid: int) -> dict[str, float]:
    """Threads and resident memory (KiB) of ``pid``."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Threads", "VmRSS"):
            out[key] = int(value.split()[0])
    return {"threads": out["Threads"], "rss_mib": round(out["VmRSS"] / 1024, 1)}


def probe(addr: tuple[str, int], path: str) -> float | None:
    """Seconds for one GET on a new connection; None when it failed or timed out."""
    start = time.monotonic()
    conn = http.client.HTTPConnection(*addr, timeout=PROBE_TIMEOUT_S)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return time.monotonic() - start if resp.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()


def spread(values: list[float | None]) -> dict[str, Any]:
    ok = [v for v in values if v is not None]
    if not ok:
        return {"answered": 0, "of": len(values)}
    return {"answered": len(ok), "of": len(values), "median_s": round(statistics.median(ok), 4),
            "max_s": round(max(ok), 4)}


def slow_clients(addr: tuple[str, int], n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(addr, timeout=PROBE_TIMEOUT_S)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: mirror\r\n")  # and never the blank line
        socks.append(s)
    return socks


def run_one(code: Path, cache: Path, args: argparse.Namespace, start_server: Any = None,
            cached: str = CACHED) -> dict[str, Any]:
    with (start_server or mirror)(code, cache) as (pid, addr):
        assert probe(addr, cached) is not None, "the server does not serve the cached artefact"
        idle = proc_status(pid)
        start = time.monotonic()
        socks = slow_clients(addr, args.clients)
        opened = time.monotonic() - start
        time.sleep(args.hold)
        held = proc_status(pid)
        during = {path: spread([probe(addr, path) for _ in range(args.probes)])
                  for path in ("/healthz", cached)}
        for s in socks:
            s.close()
        closed = time.monotonic()
        after: list[float | None] = []
        first_ok = None
        while time.monotonic() - closed < args.after:
            took = probe(addr, "/healthz")
            after.append(took)
            if took is not None and first_ok is None:
                first_ok = time.monotonic() - closed
        worst = max((t for t in after if t is not None), default=None)
        return {
            "idle": idle,
            "slow_clients_open": {**held, "open_seconds": round(opened, 2)},
            "during": {("cached" if k == cached else k): v for k, v in during.items()},
            "after_disconnect": {
                "healthz_first_answer_s": round(first_ok, 3) if first_ok is not None else None,
                "healthz_slowest_s": round(worst, 3) if worst is not None else None,
                **spread(after),
            },
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="2f3e5c2", help="git revision of the 'before' mirror")
    parser.add_argument("--clients", type=int, default=3000)
    parser.add_argument("--hold", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--after", type=float, default=20.0,
                        help="seconds of /healthz probes after the mass disconnect")
    parser.add_argument("--no-site", action="store_true", help="leave out the build cache")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, args.clients + FD_HEADROOM))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    work = Path(tempfile.mkdtemp(prefix="gotune-http-load-"))
    try:
        before = checkout(args.before, work / "before")
        out: dict[str, Any] = {"clients": args.clients, "hold_s": args.hold,
                               "probes": args.probes, "before_rev": args.before}
        for name, code in (("before", before), ("after", ROOT)):
            cache = build_tree(work / f"cache-{name}", standard_modules())
            out[name] = run_one(code, cache, args)
        if not args.no_site:
            cached = site_tree(work / "cache-site")
            out["site"] = run_one(ROOT, work / "cache-site", args, site, cached)
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
