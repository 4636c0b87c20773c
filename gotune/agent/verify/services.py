"""gotune's own services as verify finds them: the mirror, the wear check, the NUMA wrappers.

Raw observations only (does the mirror answer, what the wear state says, does each
wrapper run); the control side turns them into checks.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import urllib.request
from typing import Any

from gotune.agent.paths import NUMA_RECORD, WEAR_CRON, WEAR_STATE, WEAR_TIMER, WRAPPER_DIR
from gotune.agent.verify.process import QUICK_TIMEOUT_S, last_line

# A mirror that does not answer /healthz within this is reported as down.
MIRROR_TIMEOUT_S = 3.0
# /healthz is a small JSON document; a module's .info is smaller still.
HEALTHZ_READ_BYTES = 4000
MODULE_READ_BYTES = 500
# How many directory entries the runner looks at to find cached modules.
MIRROR_SCAN_LIMIT = 5000
# Ten cached module versions for the mirror benchmark: enough that per-request
# latency, not one large zip, dominates; few enough that a run takes a second or two.
MIRROR_BENCH_MODULES = 10
# A GOPROXY entry served on this host (http, a loopback address, any port).
LOOPBACK_URL = re.compile(r"https?://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?(/|$)")
# The tools gotune may wrap (gotune/plan/numa.py TOOLS).
WRAPPED_TOOLS = ("go", "gopls", "dlv")


# -- the module mirror -----------------------------------------------------------------


def mirror_probe(goproxy: str) -> dict[str, Any] | None:
    """When GOPROXY starts at a loopback mirror: does it answer /healthz, and serve a module."""
    first = re.split(r"[,|]", goproxy)[0].strip()
    if not LOOPBACK_URL.match(first):
        return None
    url = first.rstrip("/")
    probe: dict[str, Any] = {"url": url}
    if not http_get(f"{url}/healthz", HEALTHZ_READ_BYTES, probe, "healthz_status", "healthz",
                    "error"):
        return probe
    with contextlib.suppress(ValueError, AttributeError):
        cache_dir = json.loads(probe["healthz"]).get("cache_dir")
        found = cached_versions(str(cache_dir), 1) if cache_dir else []
        if found:
            probe["module"] = found[0]
            http_get(f"{url}/{found[0]}", MODULE_READ_BYTES, probe, "module_status",
                     "module_body", "module_error")
    return probe


def http_get(url: str, limit: int, into: dict[str, Any], status: str, body: str,
             error: str) -> bool:
    """GET ``url`` into ``into[status]``/``into[body]`` (first ``limit`` bytes), or
    ``into[error]``; True when it answered."""
    try:
        with urllib.request.urlopen(url, timeout=MIRROR_TIMEOUT_S) as resp:  # noqa: S310
            into[status] = resp.status
            into[body] = resp.read(limit).decode(errors="replace")
    except OSError as exc:
        into[error] = str(getattr(exc, "reason", exc))
        return False
    return True


def cached_versions(cache_dir: str, limit: int) -> list[str]:
    """``<escaped module>/@v/<version>.info`` of up to ``limit`` versions in the mirror's
    GOPROXY tree that have their .zip too (what `go mod download` fetches)."""
    seen = 0
    found: list[str] = []
    for root, dirs, files in os.walk(cache_dir):
        seen += len(dirs) + len(files)
        if os.path.basename(root) == "@v":
            for f in sorted(files):
                if (f.endswith(".info") and not f.startswith(".")
                        and f[:-5] + ".zip" in files):
                    found.append(os.path.relpath(os.path.join(root, f), cache_dir))
                    if len(found) >= limit:
                        return found
        if seen > MIRROR_SCAN_LIMIT:
            break
        dirs.sort()
    return found


def module_query(info_path: str) -> str:
    """``example.com/!foo/@v/v1.0.0.info`` -> ``example.com/Foo@v1.0.0``."""
    escaped, _, name = info_path.rpartition("/@v/")
    path = re.sub(r"!([a-z])", lambda m: m.group(1).upper(), escaped)
    return f"{path}@{name[:-len('.info')]}"


def mirror_bench_args(mirror: dict[str, Any]) -> dict[str, Any] | None:
    """Modules and the upstream for the mirror benchmark, from the mirror's /healthz."""
    try:
        health = json.loads(mirror.get("healthz") or "")
    except ValueError:
        return None
    upstreams = [u for u in health.get("upstreams") or [] if str(u).startswith("http")]
    cache_dir = health.get("cache_dir")
    if not upstreams or not cache_dir:
        return None
    modules = [module_query(p) for p in cached_versions(str(cache_dir), MIRROR_BENCH_MODULES)]
    return {"upstream": upstreams[0], "modules": modules} if modules else None


# -- the wear check and the NUMA wrappers ----------------------------------------------


def wear_probe() -> dict[str, Any] | None:
    """The wear state file, when the periodic wear check is scheduled on this host."""
    if not any(os.path.exists(p) for p in (WEAR_TIMER, WEAR_CRON)):
        return None
    probe: dict[str, Any] = {"path": WEAR_STATE}
    try:
        with open(WEAR_STATE, encoding="utf-8") as fh:
            data = json.load(fh)
        probe["status"] = data.get("status")
        probe["updated"] = data.get("updated")
        probe["reason"] = data.get("reason")
    except (OSError, ValueError) as exc:
        probe["error"] = str(getattr(exc, "strerror", None) or exc)
    return probe


def run_wrappers(env: dict[str, str]) -> list[dict[str, Any]]:
    """Each numactl wrapper gotune installed, run once as the user: ``TOOL version``."""
    out: list[dict[str, Any]] = []
    for tool in WRAPPED_TOOLS:
        path = os.path.join(WRAPPER_DIR, tool)
        if not os.path.exists(path):
            continue
        entry: dict[str, Any] = {"tool": tool, "path": path}
        try:
            proc = subprocess.run([path, "version"], env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=QUICK_TIMEOUT_S,
                                  check=False)
            entry["ok"] = proc.returncode == 0
            entry["output"] = last_line(proc.stdout if entry["ok"] else proc.stderr) or (
                f"exit {proc.returncode}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            entry["ok"] = False
            entry["output"] = str(exc)
        out.append(entry)
    return out


def read_numa_record() -> dict[str, Any] | None:
    """The wrappers' A/B figures apply recorded (``tools.<tool>``), when there are any."""
    try:
        with open(NUMA_RECORD, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    tools = data.get("tools") if isinstance(data, dict) else None
    return tools if isinstance(tools, dict) and tools else None
