"""The benchmarks verify times as the user, every variant side by side, interleaved.

The variants (``variants``: tuned, before, default) run in turn within each pair of
runs (A B C, C B A, A B C ...; see ``order``), each in its own verify caches.

What is timed, on three kinds of workload:

- the seed's: a new one-file module's first and repeated build, a warm rebuild of
  cmd/go, ``go test container/list`` (and, with ``--thorough``, a cold cmd/go build);
- a generated service (``workload``: ~200 packages, a dozen modules from a local
  GOPROXY tree): its no-op ``go build ./...``;
- the user's own projects (``projects``): ``go build ./...`` and
  ``go test -run XXX ./...`` where they are.

With ``cold`` set, the page cache is dropped before every timed run (``cold``).
A benchmark's step that fails in the tuned or default variant is the benchmark's
error (go's last lines); one that fails only in ``before`` makes that variant
"not measurable" for that benchmark and the others go on.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gotune.agent.verify import projects, workload
from gotune.agent.verify.process import RunnerError, last_line
from gotune.agent.verify.variants import BEFORE, DEFAULT, TUNED, Variant
from gotune.agent.verify.variants import order as order

# The benchmarks: name -> (target seconds or None, default runs).
# The classic check's targets: a new one-file module builds in at most 1.5 s the
# first time and 0.3 s when repeated (the stdlib is in the cache, as on any
# machine used for Go); those two are what a developer feels on every edit.
GENERATED = "no-op build (generated service)"
MIRROR_BENCH = "go mod download (mirror)"
BENCHMARKS: dict[str, tuple[float | None, int]] = {
    "first build (new module)": (1.5, 5),
    "repeat build": (0.3, 10),
    "warm rebuild cmd/go": (None, 5),
    "go test container/list": (None, 5),
    GENERATED: (None, 5),
    "cold build cmd/go": (None, 2),  # --thorough only: empties its cache before each run
    # when GOPROXY starts at a loopback mirror: the mirror vs its upstream directly
    MIRROR_BENCH: (None, 5),
}
DEFAULT_SET = ("first build (new module)", "repeat build", "warm rebuild cmd/go",
               "go test container/list", GENERATED)
THOROUGH_EXTRA = ("cold build cmd/go",)
# A project's benchmarks run as many times as the generated service's.
PROJECT_RUNS = BENCHMARKS[GENERATED][1]
# Benchmarks that start from an empty cache every run: no warm-up.
COLD = frozenset({"cold build cmd/go"})
# The places each benchmark's builds touch (the report explains a difference by them).
# Every build writes its work directory under GOTMPDIR.
USES: dict[str, tuple[str, ...]] = {
    name: ("GOCACHE", "GOTMPDIR") for name in BENCHMARKS} | {
    GENERATED: ("GOCACHE", "GOMODCACHE", "GOTMPDIR"), MIRROR_BENCH: ("GOMODCACHE",)}
PROJECT_USES = ("GOCACHE", "GOMODCACHE", "GOTMPDIR")
# A small standard-library package: its test binary is compiled, linked into
# GOTMPDIR and run, so `go test` exercises every place a build writes to.
TEST_PACKAGE = "container/list"
# How long one go command may run before the benchmark is reported as an error;
# the cold cmd/go build is about 30-50 s on a 2-core machine, the generated service's
# first build a few minutes.
COMMAND_TIMEOUT_S = 900
# go's error output can mislead (a full cache reads as "cannot find package"),
# so a failed step keeps a few lines; the diagnosis names the cause from the facts.
ERROR_LINES = 3
# The oldest Go verify supports (Debian 12's golang-go): the go line when none is known.
OLDEST_GO_LINE = "1.19"
# Variants whose failure is the benchmark's error; another's only takes it out.
ESSENTIAL = (TUNED, DEFAULT)

Step = Callable[[Variant, dict[str, str], bool], float]


@dataclass(frozen=True)
class Job:
    """One benchmark to run: its name, target, runs and what it works on."""

    name: str
    target_s: float | None
    runs: int
    project: str | None = None  # the project directory, for a project's benchmark
    kind: str = ""  # for a project: a key of projects.KINDS

    @property
    def uses(self) -> tuple[str, ...]:
        return PROJECT_USES if self.project else USES.get(self.name, ("GOCACHE",))


def selected(chosen: Sequence[str] | None, thorough: bool, mirror: bool) -> list[str]:
    """The benchmarks to run: the ones asked for, else the default set (and the
    mirror's when there is one); ``thorough`` adds the cold build."""
    names = list(DEFAULT_SET if chosen is None else chosen)
    if chosen is None and mirror:
        names.append(MIRROR_BENCH)
    if thorough:
        names += [n for n in THOROUGH_EXTRA if n not in names]
    return [n for n in names if n in BENCHMARKS]


def jobs(names: list[str], project_dirs: Sequence[str], runs: int | None) -> list[Job]:
    """The named benchmarks, then each project's two; ``runs`` overrides every default."""
    out = [Job(n, BENCHMARKS[n][0], runs or BENCHMARKS[n][1]) for n in names]
    for d in project_dirs:
        out += [Job(projects.benchmark_name(kind, d), None, runs or PROJECT_RUNS, d, kind)
                for kind in projects.KINDS]
    return out


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
        raise RunnerError(last_line(out.stderr or out.stdout, ERROR_LINES)
                          or f"{argv[1]} exited {out.returncode}")
    return elapsed


def go_line(versions: Sequence[str]) -> str:
    """The ``go`` directive every variant's go accepts: the oldest ``1.N`` (never 1.N.M,
    which Go before 1.21 rejects); ``1.19`` when no version is known."""
    minors = [int(m.group(1)) for v in versions if (m := re.match(r"go1\.(\d+)", v))]
    return f"1.{min(minors)}" if minors else OLDEST_GO_LINE


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
    """The benchmarks for one user; every method runs as that user.

    + go: the go on the user's login PATH (variants may bring their own)
    + work: a scratch directory of the user's, emptied by the caller
    + variants: the variants to run, tuned first
    + version: GOVERSION of ``go``
    + mirror: the mirror benchmark's modules and upstream (``services.mirror_bench_args``)
    + confirm: ``{"min_runs", "noise_fraction", "decisive_ratio"}`` from
      gotune/agent/stats.py (the control side sends them, so the rule lives in one place)
    + workload_dir: where the generated service lives (stable, so its cache stays warm)
    + workload_packages: the generated service's size (fewer for a quick check)
    + modcache_source: the user's own GOMODCACHE, read for projects' modules
    + drop: ``--cold``: drops the page cache (``cold.Dropper.drop``), before every timed run
    """

    def __init__(self, go: str, work: str, variants: list[Variant], version: str,
                 mirror: dict[str, Any] | None = None, confirm: dict[str, Any] | None = None,
                 workload_dir: str | None = None, workload_packages: int | None = None,
                 modcache_source: str | None = None, drop: Callable[[], None] | None = None,
                 ) -> None:
        self.confirm = confirm or {}
        self.go = go
        self.work = work
        self.variants = variants
        self.version = version
        self.mirror = mirror
        self.workload_dir = workload_dir or os.path.join(work, "workload")
        self.workload_packages = workload_packages
        self.modcache_source = modcache_source
        self.drop = drop
        self.counter = 0
        self.service: dict[str, Any] | None = None
        self.filled: set[tuple[str, str]] = set()  # (variant, project or "") with modules

    def go_of(self, v: Variant) -> str:
        return v.go or self.go

    def new_module(self, variant: Variant) -> str:
        """A module no cache has seen: its own path and a unique constant."""
        self.counter += 1
        tag = f"{variant.name}{self.counter}x{os.getpid()}x{time.time_ns()}"
        d = os.path.join(self.work, f"mod-{tag}")
        os.makedirs(d)
        line = go_line([v.version or self.version for v in self.variants])
        with open(os.path.join(d, "go.mod"), "w", encoding="utf-8") as fh:
            fh.write(f"module example.com/gotuneverify/m{tag}\n\ngo {line}\n")
        with open(os.path.join(d, "main.go"), "w", encoding="utf-8") as fh:
            fh.write('package main\n\nimport "fmt"\n\n'
                     f'func main() {{ fmt.Println("gotune verify {tag}") }}\n')
        return d

    def run_job(self, job: Job) -> dict[str, Any]:
        """Warm-up, ``job.runs`` interleaved rounds, and a confirming batch when they differ."""
        result: dict[str, Any] = {"name": job.name, "target_s": job.target_s,
                                  "samples": {v.name: [] for v in self.variants},
                                  "warmup_s": {}, "error": None, "uses": list(job.uses),
                                  "cold": self.drop is not None}
        if job.project:
            result["project"] = job.project
        active = list(self.variants)
        step = self._step(job)
        try:
            for v in [] if job.name in COLD else list(active):  # unmeasured: a cache may be new
                with self._unless_optional(v, active, result):
                    result["warmup_s"][v.name] = round(step(v, self._setup(job, v), True), 4)
            self._rounds(job, step, range(job.runs), result, active)
            if self._separated(result["samples"], job.runs):
                # A difference must replicate: a second batch of as many runs; the
                # verdict stands only if both batches show it (stats.benchmark_result).
                result["confirm_from"] = job.runs
                self._rounds(job, step, range(job.runs, 2 * job.runs), result, active)
        except (RunnerError, OSError, subprocess.TimeoutExpired) as exc:
            result["error"] = _error_text(exc)
        return result

    @contextlib.contextmanager
    def _unless_optional(self, v: Variant, active: list[Variant],
                         result: dict[str, Any]) -> Any:
        """Let a failure of an optional variant (before) take it out instead of the benchmark."""
        try:
            yield
        except (RunnerError, OSError, subprocess.TimeoutExpired) as exc:
            if v.name in ESSENTIAL:
                raise
            active.remove(v)
            result.setdefault("unmeasurable", {})[v.name] = _error_text(exc)

    def _rounds(self, job: Job, step: Step, rounds: range, result: dict[str, Any],
                active: list[Variant]) -> None:
        for i in rounds:  # interleaved A B C, C B A, ...: see ``order``
            for v in order(list(active), i):
                with self._unless_optional(v, active, result):
                    ctx = self._setup(job, v)
                    if self.drop is not None:
                        self.drop()
                    result["samples"][v.name].append(round(step(v, ctx, False), 4))

    def _separated(self, samples: dict[str, list[float]], runs: int) -> bool:
        """Does the first batch need confirming: tuned and another variant's ranges apart,
        beyond the noise, and not so far apart that no drift could explain it?"""
        if not self.confirm or runs < int(self.confirm.get("min_runs", 1)):
            return False
        a = samples.get(TUNED) or []
        decisive = float(self.confirm.get("decisive_ratio") or 0)
        for name in (BEFORE, DEFAULT):
            b = samples.get(name) or []
            if not a or not b:
                continue
            ma, mb = sorted(a)[len(a) // 2], sorted(b)[len(b) // 2]
            apart = max(a) < min(b) or max(b) < min(a)
            r = mb / ma if ma > 0 else 0.0
            beyond_noise = ma > 0 and abs(r - 1.0) >= float(self.confirm["noise_fraction"])
            if apart and beyond_noise and not (decisive and max(r, 1 / r) >= decisive):
                return True
        return False

    def _setup(self, job: Job, v: Variant) -> dict[str, str]:
        """The working directory (and module cache) one run of ``job`` needs."""
        name = job.name
        try:
            os.makedirs(v.cache, mode=0o700, exist_ok=True)
            if v.env.get("GOTMPDIR") and v.name == BEFORE:  # re-created beside a moved one
                os.makedirs(v.env["GOTMPDIR"], mode=0o700, exist_ok=True)
            if job.project:
                return self._project_setup(job.project, v)
            if name == GENERATED:
                return self._service_setup(v)
            if name == "first build (new module)":
                return {"dir": self.new_module(v)}
            if name == "repeat build":
                d = os.path.join(self.work, f"repeat-{v.name}")
                if not os.path.isdir(d):
                    os.rename(self.new_module(v), d)
                    timed([self.go_of(v), "build", "-o", "out"], v.env, d)
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
        except (RunnerError, OSError, subprocess.TimeoutExpired) as exc:
            exc.variant = v.name  # type: ignore[union-attr]
            raise

    def _modcache(self, v: Variant) -> str:
        if not v.modcache:
            raise RunnerError("no module cache for this variant")
        os.makedirs(v.modcache, mode=0o755, exist_ok=True)
        return v.modcache

    def _service_setup(self, v: Variant) -> dict[str, str]:
        """The generated service (made once) and its modules in ``v``'s verify module cache."""
        if self.service is None:
            line = go_line([x.version or self.version for x in self.variants])
            self.service = workload.generate(self.workload_dir, line, self.workload_packages)
        service = str(self.service["service"])
        modcache = self._modcache(v)
        if (v.name, "") not in self.filled:
            env = dict(v.env, GOMODCACHE=modcache, GOPROXY=f"file://{self.service['proxy']}",
                       GOSUMDB="off", GONOSUMDB="", GOPRIVATE="", GONOPROXY="", GOWORK="off",
                       GOFLAGS="-mod=mod")
            timed([self.go_of(v), "mod", "download"], env, service)
            self.filled.add((v.name, ""))
        return {"dir": service, "modcache": modcache}

    def _project_setup(self, directory: str, v: Variant) -> dict[str, str]:
        """A project's modules copied from the user's module cache into ``v``'s verify one."""
        modcache = self._modcache(v)
        if (v.name, directory) not in self.filled and self.modcache_source and not os.path.isdir(
                os.path.join(directory, "vendor")):
            scratch = os.path.join(self.work, f"modfile-{v.name}-{len(self.filled)}")
            os.makedirs(scratch, exist_ok=True)
            for f in projects.MODULE_FILES:
                with contextlib.suppress(FileNotFoundError):
                    shutil.copyfile(os.path.join(directory, f), os.path.join(scratch, f))
            env = projects.fill_env(v.env, modcache, self.modcache_source)
            # a module missing from the user's cache shows in the timed build's error
            with contextlib.suppress(RunnerError):
                timed([self.go_of(v), "mod", "download", f"-modfile={scratch}/go.mod"], env,
                       directory)
        self.filled.add((v.name, directory))
        return {"dir": directory, "modcache": modcache}

    def _step(self, job: Job) -> Step:
        """The timed command of one run of ``job``."""
        steps: dict[str, Step] = {
            "first build (new module)": self._build, "repeat build": self._build,
            "warm rebuild cmd/go": self._cmd_go, "cold build cmd/go": self._cold_cmd_go,
            "go test container/list": self._go_test, MIRROR_BENCH: self._mod_download,
            GENERATED: self._service_build,
        }
        chosen = self._project_step(job.kind) if job.project else steps[job.name]

        def guarded(v: Variant, ctx: dict[str, str], warm: bool) -> float:
            try:
                return float(chosen(v, ctx, warm))
            except (RunnerError, OSError, subprocess.TimeoutExpired) as exc:
                exc.variant = v.name  # type: ignore[union-attr]
                raise

        return guarded

    def _build(self, v: Variant, ctx: dict[str, str], warm: bool) -> float:
        return timed([self.go_of(v), "build", "-o", "out"], v.env, ctx["dir"])

    def _cmd_go(self, v: Variant, ctx: dict[str, str], warm: bool) -> float:
        return timed([self.go_of(v), "build", "-o", os.devnull, "cmd/go"], v.env, ctx["dir"])

    def _cold_cmd_go(self, v: Variant, ctx: dict[str, str], warm: bool) -> float:
        env = dict(v.env, GOCACHE=v.cache + "-cold")
        try:
            return timed([self.go_of(v), "build", "-o", os.devnull, "cmd/go"], env, ctx["dir"])
        finally:
            shutil.rmtree(v.cache + "-cold", ignore_errors=True)

    def _go_test(self, v: Variant, ctx: dict[str, str], warm: bool) -> float:
        return timed([self.go_of(v), "test", "-count=1", TEST_PACKAGE], v.env, ctx["dir"])

    def _service_build(self, v: Variant, ctx: dict[str, str], warm: bool) -> float:
        # Every module is in the verify module cache and go.sum is complete: no network.
        env = dict(v.env, GOMODCACHE=ctx["modcache"], GOPROXY="off", GOWORK="off")
        return timed([self.go_of(v), "build", "./..."], env, ctx["dir"])

    def _project_step(self, kind: str) -> Step:
        args = list(projects.KINDS[kind])

        def step(v: Variant, ctx: dict[str, str], warm: bool) -> float:
            env = projects.build_env(v.env, ctx["modcache"])
            return timed([self.go_of(v), *args], env, ctx["dir"])

        return step

    def _mod_download(self, v: Variant, ctx: dict[str, str], warm: bool) -> float:
        # A fresh module cache each run; the checksum database is off in both
        # variants: this times fetching, and an offline host has no sumdb.
        assert self.mirror is not None
        env = dict(v.env, GOMODCACHE=ctx["modcache"], GOSUMDB="off")
        if v.name != TUNED:
            env["GOPROXY"] = str(self.mirror["upstream"])
        try:
            return timed([self.go_of(v), "mod", "download", *self.mirror["modules"]], env,
                          ctx["dir"])
        finally:
            remove_tree(ctx["modcache"])
