"""Prefetch modules into the cache from go.sum, go.mod or module@version lists.

Incremental: an artefact already in the cache is skipped without a write.
Upstream traffic goes through the same rate limits and wear guard as the server.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from gotune.agent.mirror.core import Mirror, NotCacheable
from gotune.agent.mirror.modpath import InvalidPath, Request, check_path, check_version
from gotune.agent.mirror.upstream import NotFound, UpstreamFailed

# Parallel fetches: a few overlap upstream latency; more would only contend for
# the rate limit and the disk.
DEFAULT_JOBS = 4


class SourceError(ValueError):
    """A line in a --from file that is not a module requirement."""


@dataclass(frozen=True)
class Wanted:
    module: str
    version: str
    zip: bool  # False: only the go.mod is needed (go.sum "/go.mod" lines)

    def kinds(self) -> tuple[str, ...]:
        return ("info", "mod", "zip") if self.zip else ("mod",)


def _checked(module: str, version: str, where: str) -> tuple[str, str]:
    module = module.strip('"`')
    try:
        check_path(module)
        check_version(module, version)
    except InvalidPath as exc:
        raise SourceError(f"{where}: {exc}") from None
    return module, version


def parse_go_sum(text: str, name: str) -> list[Wanted]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise SourceError(f"{name}:{n}: not a go.sum line")
        version, zip_ = fields[1], True
        if version.endswith("/go.mod"):
            version, zip_ = version.removesuffix("/go.mod"), False
        module, version = _checked(fields[0], version, f"{name}:{n}")
        out.append(Wanted(module, version, zip_))
    return out


def parse_go_mod(text: str, name: str) -> list[Wanted]:
    """``require`` lines and versioned ``replace`` targets, single-line or in blocks."""
    out = []
    block = ""
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if block:
            if line == ")":
                block = ""
                continue
            verb, args = block, fields
        elif len(fields) == 2 and fields[1] == "(":
            block = fields[0]
            continue
        else:
            verb, args = fields[0], fields[1:]
        where = f"{name}:{n}"
        if verb == "require" and len(args) == 2:
            out.append(Wanted(*_checked(args[0], args[1], where), zip=True))
        elif verb == "replace" and "=>" in args:
            target = args[args.index("=>") + 1 :]
            if len(target) == 2:
                out.append(Wanted(*_checked(target[0], target[1], where), zip=True))
        elif verb == "require":
            raise SourceError(f"{where}: malformed require")
    return out


def parse_list(text: str, name: str) -> list[Wanted]:
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        module, at, version = line.partition("@")
        if not at:
            raise SourceError(f"{name}:{n}: expected module@version, got {line!r}")
        out.append(Wanted(*_checked(module, version, f"{name}:{n}"), zip=True))
    return out


def read_sources(paths: Iterable[Path]) -> list[Wanted]:
    """Every module version the files name, deduplicated (zip wanted if any file wants it)."""
    merged: dict[tuple[str, str], bool] = {}
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SourceError(f"cannot read {path}: {exc}") from None
        if path.name.endswith("go.sum"):
            items = parse_go_sum(text, str(path))
        elif path.name.endswith("go.mod"):
            items = parse_go_mod(text, str(path))
        else:
            items = parse_list(text, str(path))
        for w in items:
            key = (w.module, w.version)
            merged[key] = merged.get(key, False) or w.zip
    return [Wanted(m, v, z) for (m, v), z in merged.items()]


class Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total = total
        self.stream = stream
        self.enabled = stream.isatty()
        self.done = 0
        self._lock = threading.Lock()

    def step(self, label: str, counts: dict[str, int]) -> None:
        with self._lock:
            self.done += 1
            if not self.enabled:
                return
            filled = self.WIDTH * self.done // max(1, self.total)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            summary = " ".join(f"{k} {v}" for k, v in counts.items())
            self.stream.write(f"\r[{bar}] {self.done}/{self.total} {summary} {label[:40]:<40}")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()


def sync(
    mirror: Mirror,
    wanted: list[Wanted],
    jobs: int = DEFAULT_JOBS,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Fetch what is missing; returns the summary (counts per module version)."""
    counts = {"fetched": 0, "skipped": 0, "failed": 0}
    failures: list[dict[str, str]] = []
    lock = threading.Lock()
    fetched_before = mirror.metrics.total("upstream_fetched_bytes_total")
    start = time.monotonic()

    def one(w: Wanted) -> None:
        outcome, error = "skipped", ""
        for kind in w.kinds():
            req = Request(kind, w.module, w.version)
            if mirror.store.has(req):
                continue
            ok, why = mirror.guard.may_write()
            if not ok:
                outcome, error = "failed", f"not caching: {why}"
                break
            try:
                mirror.fill(req)
                outcome = "fetched"
            except (NotFound, UpstreamFailed, NotCacheable, OSError) as exc:
                outcome, error = "failed", f"{kind}: {exc}"
                break
        with lock:
            counts[outcome] += 1
            if error:
                failures.append({"module": w.module, "version": w.version, "error": error})
        if progress is not None:
            progress.step(f"{w.module}@{w.version}", counts)

    run: Callable[[Wanted], None] = one
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(run, wanted))
    mirror.close()
    return {
        "modules": len(wanted),
        **counts,
        "fetched_bytes": int(mirror.metrics.total("upstream_fetched_bytes_total") - fetched_before),
        "seconds": round(time.monotonic() - start, 3),
        "failures": sorted(failures, key=lambda f: (f["module"], f["version"])),
        "cache_dir": str(mirror.store.root),
    }
