"""The developer user as their shells see them: login environment, go env, acting as them.

As root the runner captures the user's login environment with ``runuser -l`` (so
/etc/profile.d PATH and shell exports apply) and does the user's work in a forked
child that has dropped to the user's uid and groups (``as_user``). Run as the
user itself, it does the same without changing uid.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import select
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

from gotune.agent.verify.cold import Dropper
from gotune.agent.verify.process import QUICK_TIMEOUT_S, RunnerError, last_line, run

# The environment a non-login process (an IDE, a cron job) starts with.
NON_LOGIN_PATH = "/usr/local/bin:/usr/bin:/bin"
# runuser (util-linux, no PAM password prompt) where it exists, else su; by absolute path.
SWITCH_TOOLS = ("runuser", "su")
SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
# A GOENV line's key, and any go env key the runner asks for.
GO_KEY = re.compile(r"[A-Z][A-Z0-9_]*")
# The child's answer is read in pieces of this size.
READ_CHUNK = 1 << 16


class User:
    """A developer user: who they are, and the argv of a login or non-login shell as them."""

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
        return [switch_tool(), "-l", self.name, "-c", command]

    def non_login(self, command: str) -> list[str]:
        """argv running ``command`` in a non-login shell with an IDE-like environment."""
        if self.same:
            env = [f"{k}={v}" for k, v in self._base_env(NON_LOGIN_PATH).items()]
            return ["env", "-i", *env, self.shell, "-c", command]
        return ["env", "-i", f"PATH={NON_LOGIN_PATH}", "LANG=C.UTF-8", switch_tool(),
                self.name, "-c", command]

    def groups(self) -> list[int]:
        return os.getgrouplist(self.name, self.gid)


def switch_tool() -> str:
    """The absolute path of runuser, else su."""
    for name in SWITCH_TOOLS:
        for d in SBIN_DIRS:
            if os.access(f"{d}/{name}", os.X_OK):
                return f"{d}/{name}"
    return shutil.which("su") or "su"


def login_env(user: User) -> dict[str, str]:
    """The environment the user's login shell ends up with."""
    out = subprocess.run(user.login("env -0"), stdin=subprocess.DEVNULL, capture_output=True,
                         timeout=QUICK_TIMEOUT_S, check=False, cwd="/")
    if out.returncode != 0:
        raise RunnerError(f"cannot start a login shell for {user.name}: "
                          f"{last_line(out.stderr.decode(errors='replace'))}")
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
        out = run(argv)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": "go env timed out"}
    if out.returncode != 0:
        if not out.stdout.strip() and not out.stderr.strip():
            where = "login" if login else "non-login"
            return {"ok": False, "error": f"go not found in {user.name}'s {where} shell"}
        return {"ok": False, "error": last_line(out.stderr) or f"exit {out.returncode}"}
    first, _, rest = out.stdout.partition("\n")
    try:
        values = json.loads(rest)
    except ValueError:
        return {"ok": False, "error": "go env -json printed no JSON"}
    return {"ok": True, "path": first.strip(), "env": values}


def go_env_value(go: str, env: dict[str, str], key: str) -> str:
    """``go env KEY`` with exactly ``env`` (a variant's environment)."""
    out = subprocess.run([go, "env", key], env=env, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=QUICK_TIMEOUT_S, check=False)
    if out.returncode != 0:
        raise RunnerError(f"go env {key}: {last_line(out.stderr)}")
    return out.stdout.strip()


def go_env_values(go: str, env: dict[str, str], keys: tuple[str, ...]) -> dict[str, str]:
    """``go env -json KEYS`` with exactly ``env``; a key this go does not know reads "".

    + go: the go binary (any version from 1.19)
    + env: the whole environment of the variant
    + keys: validated names (``GO_KEY``)
    """
    out = subprocess.run([go, "env", "-json", *keys], env=env, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=QUICK_TIMEOUT_S, check=False)
    if out.returncode != 0:
        raise RunnerError(f"go env: {last_line(out.stderr)}")
    try:
        values = json.loads(out.stdout or "{}")
    except ValueError as exc:
        raise RunnerError("go env -json printed no JSON") from exc
    return {k: str(values.get(k) or "") for k in keys}


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
        if sep and GO_KEY.fullmatch(key):
            values[key] = value
    return {"path": path, "exists": True, "values": values}


def as_user(user: User, fn: Callable[..., dict[str, Any]], *fargs: Any,
            helper: Dropper | None = None) -> dict[str, Any]:
    """Run ``fn(*fargs)`` in a child process with the user's uid, return its JSON.

    + helper: the root side of ``--cold`` (``cold.Dropper``): while the child runs, this
      process answers its requests to drop the page cache

    The child imports nothing new: as the user it may not read a root-only copy of
    the agent, so every module it needs is imported before the fork.
    """
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(rfd)
            if helper is not None:
                helper.child_side()
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
    raw = _read_serving(rfd, helper)
    os.waitpid(pid, 0)
    try:
        out: dict[str, Any] = json.loads(raw.decode(errors="replace"))
    except ValueError:
        out = {"error": "the user-side runner printed no result"}
    return out


def _read_serving(rfd: int, helper: Dropper | None) -> bytes:
    """The child's whole answer from ``rfd``, serving ``helper``'s requests meanwhile."""
    if helper is not None:
        helper.parent_side()
    waiting = [rfd] + ([helper.req_r] if helper is not None else [])
    chunks: list[bytes] = []
    try:
        while rfd in waiting:
            ready, _, _ = select.select(waiting, [], [])
            if helper is not None and helper.req_r in ready and not helper.serve_one():
                waiting.remove(helper.req_r)
            if rfd in ready:
                chunk = os.read(rfd, READ_CHUNK)
                if chunk:
                    chunks.append(chunk)
                else:
                    waiting.remove(rfd)
    finally:
        os.close(rfd)
        if helper is not None:
            helper.close_parent()
    return b"".join(chunks)
