"""The developer user and their Go: ``go env -json``, home, GOCACHE and GOMODCACHE.

The collector runs ``go env -json`` as that user through a login shell (so
their PATH and profile apply), with GOTOOLCHAIN=local so no toolchain is
downloaded, from ``/`` so no module applies, under a timeout. Go is looked up
on the login PATH and in /usr/local/go/bin.
"""

from __future__ import annotations

import json
import posixpath

from gotune.facts.collect import Dump
from gotune.facts.model import Facts, User
from gotune.facts.storage import place
from gotune.facts.sysfs import key_values, parse_int

VARS_MARKER = "\n@@vars\n"


def parse_goenv(output: str | None) -> tuple[dict[str, str] | None, dict[str, str]]:
    """(``go env -json`` or None, the login environment variables the collector printed)."""
    if output is None:
        return None, {}
    head, found, tail = output.partition(VARS_MARKER)
    if not found:
        head, tail = "", output.partition("@@vars\n")[2]
    env = key_values(tail)
    go: dict[str, str] | None = None
    if head.strip():
        try:
            data = json.loads(head)
        except ValueError:
            data = None
        if isinstance(data, dict):
            go = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    return go, env


def parse_user(dump: Dump, name: str) -> User:
    """The user's passwd entry: ``getent passwd`` (NSS, LDAP), else /etc/passwd."""
    lines = (dump.output("passwd") or "").strip().splitlines()
    if not lines:
        lines = [
            x for x in (dump.text("/etc/passwd") or "").splitlines() if x.startswith(name + ":")
        ]
    fields = lines[0].split(":") if lines else []
    if len(fields) < 7 or fields[0] != name:
        return User()
    return User(
        name=fields[0], uid=parse_int(fields[2]), home=fields[5] or None, shell=fields[6] or None
    )


def default_gocache(env: dict[str, str], home: str | None) -> str | None:
    """Go's default GOCACHE: $XDG_CACHE_HOME/go-build, else ~/.cache/go-build."""
    if env.get("GOCACHE"):
        return env["GOCACHE"]
    xdg = env.get("XDG_CACHE_HOME")
    if xdg and xdg.startswith("/"):
        return posixpath.join(xdg, "go-build")
    return posixpath.join(home, ".cache", "go-build") if home else None


def default_gomodcache(env: dict[str, str], home: str | None) -> str | None:
    """Go's default GOMODCACHE: the first GOPATH entry's pkg/mod, else ~/go/pkg/mod."""
    if env.get("GOMODCACHE"):
        return env["GOMODCACHE"]
    gopath = (env.get("GOPATH") or "").split(":")[0]
    if gopath.startswith("/"):
        return posixpath.join(gopath, "pkg", "mod")
    return posixpath.join(home, "go", "pkg", "mod") if home else None


def apply_user_and_go(dump: Dump, facts: Facts, user: str | None) -> None:
    """Fill facts.user, facts.go and storage.paths (home, gocache, gomodcache)."""
    if user is None:
        return
    if not dump.live:
        facts.unknown.append("go: not collected from a recorded tree")
        return
    facts.user = parse_user(dump, user)
    if facts.user.name is None:
        facts.user = User(name=user)
        facts.unknown.append(f"user: {user} not found")
    if "goenv" not in dump.commands:
        why = "not root, cannot run as the user" if "goenv not-root" in dump.skipped else "not run"
        facts.unknown.append(f"go: {why}")
        return
    out, status = dump.commands["goenv"]
    go, env = parse_goenv(out.decode("utf-8", "replace"))
    if status == 124:
        facts.unknown.append("go: go env timed out")
    elif go is None and env.get("GO"):
        facts.unknown.append("go: go env -json gave no JSON")
    facts.go = go
    home = facts.user.home or env.get("HOME") or None
    cache = go.get("GOCACHE") if go else default_gocache(env, home)
    modcache = go.get("GOMODCACHE") if go else default_gomodcache(env, home)
    for key, path in (("home", home), ("gocache", cache), ("gomodcache", modcache)):
        if path and path.startswith("/"):
            placement = place(path, facts.storage.mounts)
            if placement is not None:
                facts.storage.paths[key] = placement
