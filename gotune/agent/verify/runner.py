"""The verify runner that executes ON THE TARGET: benchmarks and state observations.

Standard library only, one file: the control machine sends this file's source on
stdin to the host's ``python3 - ARGS_JSON`` (see ``gotune.verify.remote``), so
the target needs no gotune install and no pip. It prints one line
``GOTUNE-VERIFY {json}`` with raw observations; the control side turns them
into checks, verdicts and a diagnosis (pure code, unit-tested there).

As root it acts as the developer user: the user's login environment is
captured with ``runuser -l`` (so /etc/profile.d PATH and shell exports apply),
and the benchmark/observation work runs in a forked child that has dropped to
the user's uid and groups. Run as the user itself, it does the same without
changing uid.

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
import errno
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from typing import Any, TypeVar

T = TypeVar("T")

MARKER = "GOTUNE-VERIFY "

# The environment a non-login process (an IDE, a cron job) starts with.
NON_LOGIN_PATH = "/usr/local/bin:/usr/bin:/bin"
# go env keys every observation reads; the plan's keys are added by the caller.
GO_ENV_KEYS = ("GOCACHE", "GOMODCACHE", "GOTMPDIR", "GOPROXY", "GOFLAGS", "GOROOT",
               "GOVERSION", "GOENV", "GOTOOLCHAIN")
# Caches whose placement the checks look at.
CACHE_KEYS = ("GOCACHE", "GOMODCACHE", "GOTMPDIR")
# Variables the default variant drops so Go falls back to its own defaults.
DEFAULT_DROP_PREFIX = "GO"
# How long one go command may run before the benchmark is reported as an error;
# the cold cmd/go build is about 30-50 s on a 2-core machine.
COMMAND_TIMEOUT_S = 600
# A mirror that does not answer /healthz within this is reported as down.
MIRROR_TIMEOUT_S = 3.0
# Verify keeps at most this many results per host; older lines are dropped.
HISTORY_MAX_LINES = 1000
# How many earlier results the runner sends back for the trend chart.
HISTORY_SEND_LINES = 60
ROOT_HISTORY = "/var/lib/gotune/verify/history.jsonl"
WEAR_STATE = "/var/lib/gotune/wear/state.json"
# issue 5's numactl wrappers (gotune/plan/numa.py WRAPPER_DIR) and their A/B record.
WRAPPER_DIR = "/usr/local/lib/gotune/bin"
WRAPPED_TOOLS = ("go", "gopls", "dlv")
NUMA_RECORD = "/var/lib/gotune/numa.json"
# What deploys/wear.py installs to run the check: a systemd timer, or a cron file.
WEAR_SCHEDULES = ("/etc/systemd/system/gotune-wear.timer", "/etc/cron.d/gotune-wear")

# The benchmarks: name -> (go arguments kind, target seconds or None, default runs).
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
# Ten cached module versions: enough that per-request latency, not one large zip,
# dominates; few enough that a run takes a second or two.
MIRROR_BENCH_MODULES = 10
DEFAULT_SET = ("first build (new module)", "repeat build", "warm rebuild cmd/go",
               "go test container/list")
THOROUGH_EXTRA = ("cold build cmd/go",)
# Benchmarks that start from an empty cache every run: no warm-up.
COLD = frozenset({"cold build cmd/go"})
# A small standard-library package: its test binary is compiled, linked into
# GOTMPDIR and run, so `go test` exercises every place a build writes to.
TEST_PACKAGE = "container/list"


class RunnerError(Exception):
    """Something that stops the whole run for this host (no such user, no go)."""


def _last_line(text: str, count: int = 1) -> str:
    """The last ``count`` non-empty lines of an error output, joined with " | "."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-count:])[:400]


# ---------------------------------------------------------------------------
# Shells as the user sees them


class User:
    def __init__(self, name: str, home_override: str | None) -> None:
        try:
            pw = pwd.getpwnam(name)
        except KeyError as exc:
            raise RunnerError(f"no such user {name!r} on this host") from exc
        self.name = name
        self.uid = pw.pw_uid
        self.gid = pw.pw_gid
        self.shell = pw.pw_shell or "/bin/sh"
        self.same = os.getuid() == self.uid
        if not self.same and os.getuid() != 0:
            raise RunnerError(f"verify must run as root or as {name} to act as {name}")
        # A home override is for tests that give the current user a throwaway home.
        self.home = home_override if (home_override and self.same) else pw.pw_dir

    def _base_env(self, path: str) -> dict[str, str]:
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name,
                "SHELL": self.shell, "PATH": path, "LANG": "C.UTF-8"}

    def login(self, command: str) -> list[str]:
        """argv running ``command`` in the user's login shell (profile files read)."""
        if self.same:
            env = [f"{k}={v}" for k, v in self._base_env("/usr/bin:/bin").items()]
            return ["env", "-i", *env, self.shell, "-l", "-c", command]
        return [_switch_tool(), "-l", self.name, "-c", command]

    def non_login(self, command: str) -> list[str]:
        """argv running ``command`` in a non-login shell with an IDE-like environment."""
        if self.same:
            env = [f"{k}={v}" for k, v in self._base_env(NON_LOGIN_PATH).items()]
            return ["env", "-i", *env, self.shell, "-c", command]
        return ["env", "-i", f"PATH={NON_LOGIN_PATH}", "LANG=C.UTF-8", _switch_tool(),
                self.name, "-c", command]

    def groups(self) -> list[int]:
        return os.getgrouplist(self.name, self.gid)


def _switch_tool() -> str:
    """runuser (no PAM password prompt, util-linux) where it exists, else su; absolute."""
    for name in ("runuser", "su"):
        for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
            if os.access(f"{d}/{name}", os.X_OK):
                return f"{d}/{name}"
    return shutil.which("su") or "su"


def _run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, check=False, cwd="/")


def login_env(user: User) -> dict[str, str]:
    """The environment the user's login shell ends up with."""
    out = subprocess.run(user.login("env -0"), stdin=subprocess.DEVNULL, capture_output=True,
                         timeout=60, check=False, cwd="/")
    if out.returncode != 0:
        raise RunnerError(f"cannot start a login shell for {user.name}: "
                          f"{_last_line(out.stderr.decode(errors='replace'))}")
    env: dict[str, str] = {}
    for item in out.stdout.decode(errors="replace").split("\0"):
        key, sep, value = item.partition("=")
        if sep and key and "\n" not in key:
            env[key] = value
    env.pop("OLDPWD", None)
    env.pop("_", None)
    return env


def shell_go_env(user: User, login: bool, go: str | None, keys: list[str]) -> dict[str, Any]:
    """``go env -json`` as the user sees it in a login or non-login shell."""
    quoted_keys = " ".join(keys)  # keys are validated names: [A-Z0-9_]+
    go_cmd = "go" if go is None else "'" + go.replace("'", "'\"'\"'") + "'"
    # From the home directory, as a terminal or an IDE would start: not root's cwd.
    command = (f'cd "$HOME" 2>/dev/null || cd /; command -v {go_cmd} && '
               f"exec {go_cmd} env -json {quoted_keys}")
    argv = user.login(command) if login else user.non_login(command)
    try:
        out = _run(argv)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": "go env timed out"}
    if out.returncode != 0:
        if not out.stdout.strip() and not out.stderr.strip():
            where = "login" if login else "non-login"
            return {"ok": False, "error": f"go not found in {user.name}'s {where} shell"}
        return {"ok": False, "error": _last_line(out.stderr) or f"exit {out.returncode}"}
    first, _, rest = out.stdout.partition("\n")
    try:
        values = json.loads(rest)
    except ValueError:
        return {"ok": False, "error": "go env -json printed no JSON"}
    return {"ok": True, "path": first.strip(), "env": values}


def read_goenv_file(env: dict[str, str], home: str) -> dict[str, Any] | None:
    """The user's GOENV file (what `go env -w` writes) as key -> value."""
    path = env.get("GOENV") or os.path.join(
        env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"), "go", "env")
    if path == "off":
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError:
        return {"path": path, "exists": False, "values": {}}
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", key):
            values[key] = value
    return {"path": path, "exists": True, "values": values}


# ---------------------------------------------------------------------------
# Where a path lives


def _unescape_mount(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def read_mounts() -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return mounts
    for line in lines:
        left, sep, right = line.partition(" - ")
        parts = left.split()
        rparts = right.split()
        if not sep or len(parts) < 6 or len(rparts) < 2:
            continue
        mounts.append({
            "point": _unescape_mount(parts[4]), "devno": parts[2], "options": parts[5],
            "fstype": rparts[0], "source": _unescape_mount(rparts[1]),
            "super": rparts[2] if len(rparts) > 2 else "",
        })
    return mounts


def mount_of(path: str, mounts: list[dict[str, Any]]) -> dict[str, Any] | None:
    best: dict[str, Any] | None = None
    for m in mounts:  # later entries shadow earlier ones on the same point
        point = m["point"].rstrip("/") or "/"
        if (path == point or path.startswith(point.rstrip("/") + "/") or point == "/") and (
            best is None or len(point) >= len(best["point"].rstrip("/") or "/")
        ):
            best = m
    return best


def _read_first(paths: list[str]) -> str | None:
    for cand in paths:
        with contextlib.suppress(OSError, UnicodeDecodeError), open(
                cand, encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    return None


# Virtual disks report rotational=1 whatever backs them; their speed is unknown.
VIRTUAL_DISK_NAME = re.compile(r"^(vd|xvd)[a-z]+")
VIRTUAL_DISK_MODEL = re.compile(r"QEMU|VMware|VBOX|Virtual|Msft", re.IGNORECASE)


def block_device(devno: str) -> dict[str, Any]:
    """Name, rotational flag and whether it is a VM's virtual disk, from sysfs."""
    base = f"/sys/dev/block/{devno}"
    info: dict[str, Any] = {}
    if not os.path.exists(base):
        return info
    real = os.path.realpath(base)
    name = os.path.basename(real)
    parent = os.path.dirname(real)
    info["device"] = name
    rot = _read_first([f"{real}/queue/rotational", f"{parent}/queue/rotational"])
    info["rotational"] = None if rot is None else rot == "1"
    model = " ".join(filter(None, (
        _read_first([f"{real}/device/vendor", f"{parent}/device/vendor"]),
        _read_first([f"{real}/device/model", f"{parent}/device/model"]))))
    disk = os.path.basename(parent) if os.path.exists(f"{real}/partition") else name
    info["virtual"] = bool(VIRTUAL_DISK_NAME.match(disk) or VIRTUAL_DISK_MODEL.search(model))
    return info


def place(path: str, mounts: list[dict[str, Any]]) -> dict[str, Any]:
    """Filesystem facts for the nearest existing ancestor of ``path``."""
    probe = os.path.realpath(path) if path else ""
    while probe and probe != "/" and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    info: dict[str, Any] = {"resolved": probe or None}
    m = mount_of(probe or "/", mounts)
    if m is not None:
        info["mount"] = m["point"]
        info["fstype"] = m["fstype"]
        info["source"] = m["source"]
        info["mount_options"] = m["options"]
        info["super_options"] = m["super"]
        if not m["devno"].startswith("0:"):  # major 0: tmpfs, overlay, network
            info.update(block_device(m["devno"]))
    network_like = info.get("fstype") in {"nfs", "nfs4", "cifs", "smb3", "9p", "drvfs",
                                          "sshfs"} or str(info.get("fstype", "")).startswith(
                                              "fuse")
    if probe and not network_like:
        with contextlib.suppress(OSError):
            st = os.statvfs(probe)
            info["size_bytes"] = st.f_blocks * st.f_frsize
            info["free_bytes"] = st.f_bavail * st.f_frsize
    return info


def observe_path(path: str, mounts: list[dict[str, Any]]) -> dict[str, Any]:
    """Run as the user: does the path exist, who owns it, can the user write there."""
    obs: dict[str, Any] = {"path": path}
    try:
        st = os.stat(path)
        obs["exists"] = True
        obs["uid"] = st.st_uid
        try:
            obs["owner"] = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            obs["owner"] = str(st.st_uid)
        obs["mode"] = oct(st.st_mode & 0o7777)
    except OSError as exc:
        obs["exists"] = False
        obs["stat_error"] = exc.strerror
    probe = os.path.join(path, f".gotune-verify-write-{os.getpid()}")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"x" * 4096)
        finally:
            os.close(fd)
            os.unlink(probe)
        obs["writable"] = True
    except OSError as exc:
        obs["writable"] = False
        obs["write_error"] = exc.strerror
        obs["write_errno"] = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    obs.update(place(path, mounts))
    return obs


def read_cpufreq() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    base = "/sys/devices/system/cpu"
    with contextlib.suppress(OSError):
        names = sorted(n for n in os.listdir(base) if re.fullmatch(r"cpu\d+", n))
        for name in names:
            vals: dict[str, Any] = {"cpu": int(name[3:])}
            for key in ("scaling_max_freq", "cpuinfo_max_freq"):
                with contextlib.suppress(OSError, ValueError), open(
                        f"{base}/{name}/cpufreq/{key}", encoding="ascii") as fh:
                    vals[key] = int(fh.read().strip())
            if len(vals) == 3:
                out.append(vals)
    return out


# ---------------------------------------------------------------------------
# Benchmarks (run as the user)


def _go_version_line(version: str) -> str:
    m = re.match(r"go(\d+\.\d+(?:\.\d+)?)", version)
    return f"\ngo {m.group(1)}\n" if m else "\n"


class Variant:
    def __init__(self, name: str, env: dict[str, str], cache_root: str) -> None:
        self.name = name
        self.env = dict(env)
        self.cache = os.path.join(cache_root, f"gotune-verify-{name}")
        self.env["GOCACHE"] = self.cache
        self.error: str | None = None


def _timed(argv: list[str], env: dict[str, str], cwd: str) -> float:
    start = time.perf_counter()
    out = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        # go's own message can mislead (a full cache reads as "cannot find package"),
        # so keep a few lines; the diagnosis names the cause from the facts.
        raise RunnerError(_last_line(out.stderr, 3) or f"{argv[1]} exited {out.returncode}")
    return elapsed


class Bench:
    """The A/B benchmarks for one user; every method runs as that user."""

    def __init__(self, go: str, work: str, variants: list[Variant], version: str,
                 mirror: dict[str, Any] | None = None,
                 confirm: dict[str, Any] | None = None) -> None:
        # confirm: {"min_runs", "noise_fraction"} from gotune/verify/stats.py (the
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

    def prepare(self, variant: Variant) -> None:
        os.makedirs(variant.cache, mode=0o700, exist_ok=True)

    def run(self, name: str, runs: int) -> dict[str, Any]:
        target, _ = BENCHMARKS[name]
        result: dict[str, Any] = {"name": name, "target_s": target,
                                  "samples": {v.name: [] for v in self.variants},
                                  "warmup_s": {}, "error": None}
        step = self._step(name)
        try:
            for v in self.variants:  # warm-up, unmeasured: a verify cache may be new
                if name in COLD:
                    break
                v_ctx = self._setup(name, v)
                result["warmup_s"][v.name] = round(step(v, v_ctx, True), 4)
            for i in range(runs):  # interleaved A B, B A, A B ...: see ``order``
                for v in order(self.variants, i):
                    v_ctx = self._setup(name, v)
                    result["samples"][v.name].append(round(step(v, v_ctx, False), 4))
            if self._separated(result["samples"], runs):
                # A difference must replicate: a second batch of as many runs; the
                # verdict stands only if both batches show it (stats.benchmark_result).
                result["confirm_from"] = runs
                for i in range(runs):
                    for v in order(self.variants, i + runs):
                        v_ctx = self._setup(name, v)
                        result["samples"][v.name].append(round(step(v, v_ctx, False), 4))
        except (RunnerError, OSError, subprocess.TimeoutExpired) as exc:
            who = getattr(exc, "variant", None)
            msg = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if isinstance(exc, OSError) and exc.filename:
                msg = f"{msg}: {exc.filename}"
            if isinstance(exc, subprocess.TimeoutExpired):
                msg = f"timed out after {COMMAND_TIMEOUT_S} s"
            result["error"] = f"{who}: {msg}" if who else msg
        return result

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
        try:
            self.prepare(v)
            if name == "first build (new module)":
                return {"dir": self.new_module(v)}
            if name == "repeat build":
                key = f"repeat-{v.name}"
                d = os.path.join(self.work, key)
                if not os.path.isdir(d):
                    src = self.new_module(v)
                    os.rename(src, d)
                    _timed([self.go, "build", "-o", "out"], v.env, d)
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

    def _step(self, name: str) -> Any:
        def build(v: Variant, ctx: dict[str, str], warm: bool) -> float:
            return _timed([self.go, "build", "-o", "out"], v.env, ctx["dir"])

        def cmd_go(v: Variant, ctx: dict[str, str], warm: bool) -> float:
            return _timed([self.go, "build", "-o", os.devnull, "cmd/go"], v.env, ctx["dir"])

        def cold_cmd_go(v: Variant, ctx: dict[str, str], warm: bool) -> float:
            env = dict(v.env, GOCACHE=v.cache + "-cold")
            try:
                return _timed([self.go, "build", "-o", os.devnull, "cmd/go"], env, ctx["dir"])
            finally:
                shutil.rmtree(v.cache + "-cold", ignore_errors=True)

        def mod_download(v: Variant, ctx: dict[str, str], warm: bool) -> float:
            # A fresh module cache each run; the checksum database is off in both
            # variants: this times fetching, and an offline host has no sumdb.
            assert self.mirror is not None
            env = dict(v.env, GOMODCACHE=ctx["modcache"], GOSUMDB="off")
            if v.name == "default":
                env["GOPROXY"] = str(self.mirror["upstream"])
            try:
                return _timed([self.go, "mod", "download",
                               *self.mirror["modules"]], env, ctx["dir"])
            finally:
                remove_tree(ctx["modcache"])

        def go_test(v: Variant, ctx: dict[str, str], warm: bool) -> float:
            return _timed([self.go, "test", "-count=1", TEST_PACKAGE], v.env, ctx["dir"])

        steps = {"first build (new module)": build, "repeat build": build,
                 "warm rebuild cmd/go": cmd_go, "cold build cmd/go": cold_cmd_go,
                 "go test container/list": go_test, MIRROR_BENCH: mod_download}

        def guarded(v: Variant, ctx: dict[str, str], warm: bool) -> float:
            try:
                return float(steps[name](v, ctx, warm))
            except (RunnerError, OSError, subprocess.TimeoutExpired) as exc:
                exc.variant = v.name  # type: ignore[union-attr]
                raise

        return guarded


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
                                  capture_output=True, text=True, timeout=60, check=False)
            entry["ok"] = proc.returncode == 0
            entry["output"] = _last_line(proc.stdout if entry["ok"] else proc.stderr) or (
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


def default_env(login: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in login.items() if not k.startswith(DEFAULT_DROP_PREFIX)}
    env["GOENV"] = "off"
    return env


def go_env_value(go: str, env: dict[str, str], key: str) -> str:
    out = subprocess.run([go, "env", key], env=env, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=60, check=False)
    if out.returncode != 0:
        raise RunnerError(f"go env {key}: {_last_line(out.stderr)}")
    return out.stdout.strip()


def user_side(args: dict[str, Any], user_home: str, login: dict[str, str],
              go: str | None) -> dict[str, Any]:
    """Everything that must run with the user's uid: path checks and benchmarks."""
    mounts = read_mounts()
    result: dict[str, Any] = {"paths": {}, "benchmarks": [], "bench_error": None}
    # Read with the user's rights: GOENV and the mirror's cache_dir are the user's to name.
    result["goenv_file"] = read_goenv_file(login, user_home)
    mirror = mirror_probe(str(args.get("goproxy") or ""))
    if mirror is not None:
        result["mirror"] = mirror
        args = dict(args, mirror_bench=mirror_bench_args(mirror))
    tuned_env = dict(login)
    if go is None:
        result["bench_error"] = "go not found on the user's login PATH"
        return result
    try:
        tuned_vals = {k: go_env_value(go, tuned_env, k) for k in CACHE_KEYS}
        default_cache = go_env_value(go, default_env(login), "GOCACHE")
        version = go_env_value(go, tuned_env, "GOVERSION")
    except (RunnerError, OSError, subprocess.TimeoutExpired) as exc:
        result["bench_error"] = str(exc)
        return result
    for key, value in tuned_vals.items():
        if value:
            result["paths"][key] = observe_path(value, mounts)
    result["wrappers"] = run_wrappers(tuned_env)
    result["default_paths"] = {"GOCACHE": place(default_cache, mounts) | {"path": default_cache}}
    chosen = args.get("benchmarks")
    names = list(DEFAULT_SET if chosen is None else chosen)
    if chosen is None and args.get("mirror_bench"):
        names.append(MIRROR_BENCH)
    if args.get("thorough"):
        names += [n for n in THOROUGH_EXTRA if n not in names]
    if not names:
        return result
    work = os.path.join(user_home, ".cache", "gotune-verify", "work")
    shutil.rmtree(work, ignore_errors=True)
    try:
        os.makedirs(work, mode=0o700, exist_ok=True)
    except OSError as exc:
        result["bench_error"] = f"cannot create {work}: {exc.strerror}"
        return result
    variants = [Variant("tuned", tuned_env, tuned_vals["GOCACHE"]),
                Variant("default", default_env(login), default_cache)]
    bench = Bench(go, work, variants, version, args.get("mirror_bench"), args.get("confirm"))
    runs_override = args.get("runs")
    for name in names:
        if name not in BENCHMARKS:
            continue
        runs = int(runs_override) if runs_override else BENCHMARKS[name][1]
        result["benchmarks"].append(bench.run(name, runs))
    shutil.rmtree(work, ignore_errors=True)
    return result


def as_user(user: User, fn: Any, *fargs: Any) -> dict[str, Any]:
    """Run ``fn(*fargs)`` in a child process with the user's uid, return its JSON."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(rfd)
            if not user.same:
                os.setgroups(user.groups())
                os.setgid(user.gid)
                os.setuid(user.uid)
            os.umask(0o022)
            os.chdir(user.home if os.path.isdir(user.home) else "/")
            data = json.dumps(fn(*fargs)).encode()
        except BaseException as exc:
            data = json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode()
            code = 1
        with os.fdopen(wfd, "wb") as fh:
            fh.write(data)
        os._exit(code)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as fh:
        raw = fh.read()
    os.waitpid(pid, 0)
    try:
        out: dict[str, Any] = json.loads(raw.decode(errors="replace"))
    except ValueError:
        out = {"error": "the user-side runner printed no result"}
    return out


# ---------------------------------------------------------------------------
# Services and history (root side)


def mirror_probe(goproxy: str) -> dict[str, Any] | None:
    """When GOPROXY starts at a loopback mirror: does it answer /healthz."""
    first = re.split(r"[,|]", goproxy)[0].strip()
    if not re.match(r"https?://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?(/|$)", first):
        return None
    url = first.rstrip("/")
    probe: dict[str, Any] = {"url": url}
    if not _http_get(f"{url}/healthz", 4000, probe, "healthz_status", "healthz", "error"):
        return probe
    with contextlib.suppress(ValueError, AttributeError):
        cache_dir = json.loads(probe["healthz"]).get("cache_dir")
        found = cached_version(str(cache_dir)) if cache_dir else None
        if found is not None:
            probe["module"] = found
            _http_get(f"{url}/{found}", 500, probe, "module_status", "module_body", "module_error")
    return probe


def _http_get(url: str, limit: int, into: dict[str, Any], status: str, body: str,
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


# How many directory entries the runner looks at to find one cached module.
MIRROR_SCAN_LIMIT = 5000


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


def cached_version(cache_dir: str) -> str | None:
    found = cached_versions(cache_dir, 1)
    return found[0] if found else None


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


def wear_probe() -> dict[str, Any] | None:
    """The wear state file, when the periodic wear check is scheduled on this host."""
    if not any(os.path.exists(p) for p in WEAR_SCHEDULES):
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


def history_path(user_home: str) -> str:
    if os.getuid() == 0:
        return ROOT_HISTORY
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(user_home, ".local", "state")
    return os.path.join(state, "gotune", "verify", "history.jsonl")


def read_history(path: str) -> list[Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    out: list[Any] = []
    for line in lines[-HISTORY_SEND_LINES:]:
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def append_history(path: str, record: Any) -> None:
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        lines = []
    lines.append(json.dumps(record, sort_keys=True))
    lines = lines[-HISTORY_MAX_LINES:]
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------


def measure(args: dict[str, Any]) -> dict[str, Any]:
    users = [str(u) for u in args.get("users") or []]
    if not users:
        users = [pwd.getpwuid(os.getuid()).pw_name]
    keys = sorted(set(GO_ENV_KEYS) | {k for k in args.get("keys", []) if re.fullmatch(
        r"[A-Z][A-Z0-9_]*", str(k))})
    out: dict[str, Any] = {"users": {}, "started": time.time()}
    for index, name in enumerate(users):
        user = User(name, args.get("home"))
        login = login_env(user)
        rec: dict[str, Any] = {"uid": user.uid, "home": user.home}
        rec["login"] = shell_go_env(user, True, None, keys)
        go = rec["login"].get("path") if rec["login"].get("ok") else None
        rec["non_login"] = shell_go_env(user, False, go, keys)
        side_args = dict(args)
        side_args["goproxy"] = str(rec["login"].get("env", {}).get("GOPROXY", ""))
        if index > 0:  # benchmarks once per host, for the first developer user
            side_args["benchmarks"] = []
            side_args["thorough"] = False
        rec.update(as_user(user, user_side, side_args, user.home, login, go))
        out["users"][name] = rec
    out["cpufreq"] = read_cpufreq()
    numa = read_numa_record()
    if numa is not None:
        out["numa_wrappers"] = numa
    wear = wear_probe()
    if wear is not None:
        out["wear"] = wear
    first = users[0]
    hist = str(args.get("history_path") or history_path(out["users"][first]["home"]))
    out["history_path"] = hist
    out["history"] = read_history(hist)
    out["finished"] = time.time()
    return out


def main(argv: list[str]) -> int:
    try:
        args = json.loads(argv[1]) if len(argv) > 1 else {}
        if not isinstance(args, dict):
            raise RunnerError("runner arguments must be a JSON object")
        if args.get("mode") == "record":
            append_history(str(args["path"]), args["record"])
            result: dict[str, Any] = {"recorded": args["path"]}
        else:
            result = measure(args)
    except (RunnerError, ValueError, KeyError, OSError, subprocess.SubprocessError) as exc:
        result = {"error": str(exc) or type(exc).__name__}
    sys.stdout.write(MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
