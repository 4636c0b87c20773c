"""The team build cache as a developer's go sees it: the helper in GOCACHEPROG, its site.

Raw observations only (run as the user, from their login environment): whether
GOCACHEPROG names gotune's helper, whether it starts and speaks the protocol (and how
fast: go pays that on every command), whether its site answers /healthz, and the
figures apply measured (``/var/lib/gotune/buildcache.json``). The control side turns
them into checks (``gotune/verify/checks/buildcache.py``).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from typing import Any

from gotune.agent.paths import BUILDCACHE_HELPER, BUILDCACHE_RECORD
from gotune.agent.verify.services import HEALTHZ_READ_BYTES, http_get

# The helper answers its first line in milliseconds; a second means it hangs.
HELPER_TIMEOUT_S = 5.0
# What go sends a GOCACHEPROG helper last: close, answered before it exits.
CLOSE = b'{"ID":1,"Command":"close"}\n'
# Starts timed; the fastest is the figure: what every go command pays once the binary
# is in the page cache, with a busy machine's delays (which only ever add) left out.
HELPER_STARTS = 3


def helper_start(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Start the helper as go would ``HELPER_STARTS`` times: the fastest first answer
    (``start_ms``), every one (``starts_ms``), its commands; the first failure ends it."""
    starts = []
    for _ in range(HELPER_STARTS):
        out = _one_start(argv, env)
        if not out["ok"]:
            return out
        starts.append(out["start_ms"])
    return {**out, "start_ms": min(starts), "starts_ms": starts}


def _one_start(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Start the helper as go would, time its first line (its commands), close it."""
    out: dict[str, Any] = {}
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, cwd="/")
        assert proc.stdin is not None and proc.stdout is not None
        first = proc.stdout.readline()
        out["start_ms"] = round((time.perf_counter() - start) * 1000, 2)
        proc.stdin.write(CLOSE)
        proc.stdin.flush()
        proc.stdout.readline()
        proc.wait(timeout=HELPER_TIMEOUT_S)
        out["commands"] = json.loads(first).get("KnownCommands")
        out["ok"] = proc.returncode == 0 and bool(out["commands"])
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        out.update({"ok": False, "error": str(exc)[:300]})
    return out


def probe(gocacheprog: str, env: dict[str, str]) -> dict[str, Any] | None:
    """Observations when GOCACHEPROG names gotune's helper; None when it does not."""
    try:
        argv = shlex.split(gocacheprog)
    except ValueError:
        return None
    if not argv or argv[0] != BUILDCACHE_HELPER:
        return None
    found: dict[str, Any] = {"gocacheprog": gocacheprog}
    site = argv[argv.index("-site") + 1] if "-site" in argv[:-1] else None
    found["site"] = site
    if not os.access(argv[0], os.X_OK):
        found["helper"] = {"ok": False, "error": f"{argv[0]} is missing or not executable"}
    else:
        found["helper"] = helper_start(argv, {**env, "GOTUNE_BUILDCACHE": "off"})
    if site:
        http_get(f"{site.rstrip('/')}/healthz", HEALTHZ_READ_BYTES, found, "healthz_status",
                 "healthz", "error")
    try:
        with open(BUILDCACHE_RECORD, encoding="utf-8") as fh:
            found["measured"] = json.load(fh)
    except (OSError, ValueError):
        found["measured"] = None
    return found
