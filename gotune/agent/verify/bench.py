"""The A/B benchmarks verify times as the user: tuned against Go's own defaults.

Two variants of every benchmark, interleaved A/B (A B, B A, A B ...; see ``order``):

- tuned: the user's login environment as is (GOENV file, exported variables);
- default: Go's own defaults on the same machine and the same ``go`` binary:
  ``GOENV=off`` and every ``GO*`` variable unset, so caches fall to Go's
  defaults under the user's home.

Each variant builds into its own verify cache, a ``gotune-verify-<variant>``
directory inside that variant's GOCACHE (same filesystem, never the user's own
cache entries), kept between runs so warm benchmarks stay warm.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from gotune.agent.verify.process import RunnerError, last_line

T = TypeVar("T")

# The benchmarks: name -> (target seconds or None, default runs).
# The classic check's targets: a new one-file module builds in at most 1.5 s the
# first time and 0.3 s when repeated (the stdlib is in the cache, as on any
# machine used for Go); those two are what a developer feels on every edit.
BENCHMARKS: dict[str, tuple[float | None, int]] = {
    "first build (new module)": (1.5, 5),
    "repeat build": (0.3, 10),
    "warm rebuild cmd/go": (None, 5),
    "go test container/list": (None, 5),
    "cold build cmd/go": (None, 2),  # --thorough only: empties its cache before each run
    # when GOPROXY starts at a loopback mirror: the mirror vs its upstream directly
    "go mod download (mirror)": (None, 5),
}
MIRROR_BENCH = "go mod download (mirror)"
DEFAULT_SET = ("first build (new module)", "repeat build", "warm rebuild cmd/go",
               "go test container/list")
THOROUGH_EXTRA = ("cold build cmd/go",)
# Benchmarks that start from an empty cache every run: no warm-up.
COLD = frozenset({"cold build cmd/go"})
# A small standard-library package: its test binary is compiled, linked into
# GOTMPDIR and run, so `go test` exercises every place a build writes to.
TEST_PACKAGE = "container/list"
# How long one go command may run before the benchmark is reported as an error;
# the cold cmd/go build is about 30-50 s on a 2-core machine.
COMMAND_TIMEOUT_S = 600
# Variables the default variant drops so Go falls back to its own defaults.
DEFAULT_DROP_PREFIX = "GO"
# go's error output can mislead (a full cache reads as "cannot find package"),
# so a failed step keeps a few lines; the diagnosis names the cause from the facts.
ERROR_LINES = 3

Step = Callable[["Variant", dict[str, str], bool], float]


def selected(chosen: Sequence[str] | None, thorough: bool, mirror: bool) -> list[str]:
    """The benchmarks to run: the ones asked for, else the default set (and the
    mirror's when there is one); ``thorough`` adds the cold build."""
    names = list(DEFAULT_SET if chosen is None else chosen)
    if chosen is None and mirror:
        names.append(MIRROR_BENCH)
    if thorough:
        names += [n for n in THOROUGH_EXTRA if n not in names]
    return [n for n in names if n in BENCHMARKS]


def default_env(login: dict[str, str]) -> dict[str, str]:
    """The default variant's environment: the login one without any GO* variable."""
    env = {k: v for k, v in login.items() if not k.startswith(DEFAULT_DROP_PREFIX)}
    env["GOENV"] = "off"
    return env


class Variant:
    """One arm of the A/B comparison: its environment and its own verify cache."""

    def __init__(self, name: str, env: dict[str, str], cache_root: str) -> None:
        self.name = name
        self.env = dict(env)
        self.cache = os.path.join(cache_root, f"gotune-verify-{name}")
        self.env["GOCACHE"] = self.cache
        self.error: str | None = None


def order(variants: list[T], pair: int) -> list[T]:
    """The variants of run pair ``pair``: A B, then B A, then A B ...

    Interleaving spreads slow drifts (another job starting, the CPU warming up)
    over both variants; alternating which goes first cancels the effect of
    running right after the other one (a warm page cache, a just-woken CPU).
    """
    return list(variants) if pair % 2 == 0 else list(reversed(variants))


def remove_tree(path: str) -> None:
    """rm -rf for a module cache, whose files and directories Go makes read-only."""
    for root, dirs, _files in os.walk(path):
        for d in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(root, d), 0o700)
    shutil.rmtree(path, ignore_errors=True)


def timed(argv: list[str], env: dict[str, str], cwd: str) -> float:
    """Seconds ``argv`` took; RunnerError with go's last lines when it failed."""
    start = time.perf_counter()
    out = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise RunnerError(last_line(out.stderr, ERROR_LINES)
                          or f"{argv[1]} exited {out.returncode}")
    return elapsed


def _go_version_line(version: str) -> str:
    m = re.match(r"go(\d+\.\d+(?:\.\d+)?)", version)
    return f"\ngo {m.group(1)}\n" if m else "\n"


def _error_text(exc: BaseException) -> str:
    """A failed run's message, naming the variant it failed in."""
    who = getattr(exc, "variant", None)
    msg = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if isinstance(exc, OSError) and exc.filename:
        msg = f"{msg}: {exc.filename}"
    if isinstance(exc, subprocess.TimeoutExpired):
        msg = f"timed out after {COMMAND_TIMEOUT_S} s"
    return f"{who}: {msg}" if who else msg


class Bench:
    """The A/B benchmarks for one user; every method runs as that user."""

    def __init__(self, go: str, work: str, variants: list[Variant], version: str,
                 mirror: dict[str, Any] | None = None,
                 confirm: dict[str, Any] | None = None) -> None:
        # confirm: {"min_runs", "noise_fraction"} from gotune/agent/stats.py (the
        # control side sends them, so the rule lives in one place)
        self.confirm = confirm or {}
        self.go = go
        self.work = work
        self.variants = variants
        self.version = version
        self.mirror = mirror
        self.counter = 0

    def new_module(self, variant: Variant) -> str:
        """A module no cache has seen: its own path and a unique constant."""
        self.counter += 1
        tag = f"{variant.name}{self.counter}x{os.getpid()}x{time.time_ns()}"
        d = os.path.join(self.work, f"mod-{tag}")
        os.makedirs(d)
        with open(os.path.join(d, "go.mod"), "w", encoding="utf-8") as fh:
            fh.write(f"module example.com/gotuneverify/m{tag}\n{_go_version_line(self.version)}")
        with open(os.path.join(d, "main.go"), "w", encoding="utf-8") as fh:
            fh.write('package main\n\nimport "fmt"\n\n'
                     f'func main() {{ fmt.Println("gotune verify {tag}") }}\n')
        return d

    def run(self, name: str, runs: int) -> dict[str, Any]:
        """Warm-up, ``runs`` interleaved pairs, and a confirming batch when they differ."""
        target, _ = BENCHMARKS[name]
        result: dict[str, Any] = {"name": name, "target_s": target,
                                  "samples": {v.name: [] for v in self.variants},
                                  "warmup_s": {}, "error": None}
        step = self._step(name)
        try:
            for v in [] if name in COLD else self.variants:  # unmeasured: a cache may be new
                result["warmup_s"][v.name] = round(step(v, self._setup(name, v), True), 4)
            self._pairs(name, step, range(runs), result["samples"])
            if self._separated(result["samples"], runs):
                # A difference must replicate: a second batch of as many runs; the
                # verdict stands only if both batches show it (stats.benchmark_result).
                result["confirm_from"] = runs
                self._pairs(name, step, range(runs, 2 * runs), result["samples"])
        except (RunnerError, OSError, subprocess.TimeoutExpired) as exc:
            result["error"] = _error_text(exc)
        return result

    def _pairs(self, name: str, step: Step, pairs: range,
               samples: dict[str, list[float]]) -> None:
        for i in pairs:  # interleaved A B, B A, A B ...: see ``order``
            for v in order(self.variants, i):
                samples[v.name].append(round(step(v, self._setup(name, v), False), 4))

    def _separated(self, samples: dict[str, list[float]], runs: int) -> bool:
        """Would the first batch count as a difference (ranges apart, beyond the noise)?"""
        if not self.confirm or runs < int(self.confirm.get("min_runs", 1)):
            return False
        a, b = samples.get("tuned") or [], samples.get("default") or []
        if not a or not b:
            return False
        ma, mb = sorted(a)[len(a) // 2], sorted(b)[len(b) // 2]
        apart = max(a) < min(b) or max(b) < min(a)
        return apart and ma > 0 and abs(mb / ma - 1.0) >= float(self.confirm["noise_fraction"])

    def _setup(self, name: str, v: Variant) -> dict[str, str]:
        """The working directory (and module cache) one run of ``name`` needs."""
        try:
            os.makedirs(v.cache, mode=0o700, exist_ok=True)
            if name == "first build (new module)":
                return {"dir": self.new_module(v)}
            if name == "repeat build":
                d = os.path.join(self.work, f"repeat-{v.name}")
                if not os.path.isdir(d):
                    os.rename(self.new_module(v), d)
                    timed([self.go, "build", "-o", "out"], v.env, d)
                return {"dir": d}
            if name == "cold build cmd/go":
                shutil.rmtree(v.cache + "-cold", ignore_errors=True)
            if name == MIRROR_BENCH:
                if not self.mirror:
                    raise RunnerError("GOPROXY does not start at a local mirror with modules "
                                      "cached and an http upstream")
                self.counter += 1
                return {"dir": self.work,
                        "modcache": os.path.join(self.work, f"modcache-{self.counter}")}
            return {"dir": self.work}
        except (RunnerError, OSError) as exc:
            exc.variant = v.name  # type: ignore[union-attr]
            raise

    def _step(self, name: str) -> Step:
        """The timed command of one run of ``name``."""
        steps: dict[str, Step] = {
            "first build (new module)": self._build, "repeat build": self._build,
            "warm rebuild cmd/go": self._cmd_go, "cold build cmd/go": self._cold_cmd_go,
            "go test container/list": self._go_test, MIRROR_BENCH: self._mod_download,
        }

        def guarded(v: Variant, ctx: dict[str, str], warm: bool) -> float:
            try:
                return float(steps[name](v, ctx, warm))
            except (RunnerError, OSError, subprocess.TimeoutExpired) as exc:
                exc.variant = v.name  # type: ignore[union-attr]
                raise

        return guarded

    def _build(self, v: Variant, ctx: dict[str, str], warm: bool) -> float:
        return timed([self.go, "build", "-o", "out"], v.env, ctx["dir"])

    def _cmd_go(self, v: Variant, ctx: dict[str, str], warm: bool) -> float:
        return timed([self.go, "build", "-o", os.devnull, "cmd/go"], v.env, ctx["dir"])

    def _cold_cmd_go(self, v: Variant, ctx: dict[str, str], warm: bool) -> float:
        env = dict(v.env, GOCACHE=v.cache + "-cold")
        try:
            return timed([self.go, "build", "-o", os.devnull, "cmd/go"], env, ctx["dir"])
        finally:
            shutil.rmtree(v.cache + "-cold", ignore_errors=True)

    def _go_test(self, v: Variant, ctx: dict[str, str], warm: bool) -> float:
        return timed([self.go, "test", "-count=1", TEST_PACKAGE], v.env, ctx["dir"])

    def _mod_download(self, v: Variant, ctx: dict[str, str], warm: bool) -> float:
        # A fresh module cache each run; the checksum database is off in both
        # variants: this times fetching, and an offline host has no sumdb.
        assert self.mirror is not None
        env = dict(v.env, GOMODCACHE=ctx["modcache"], GOSUMDB="off")
        if v.name == "default":
            env["GOPROXY"] = str(self.mirror["upstream"])
        try:
            return timed([self.go, "mod", "download", *self.mirror["modules"]], env, ctx["dir"])
        finally:
            remove_tree(ctx["modcache"])
