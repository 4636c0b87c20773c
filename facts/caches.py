"""Each developer user's Go: ``go env -json``, GOENV file, shell exports, where caches live.

The collector runs, as each user through a login shell (so their PATH and
profile apply), with GOTOOLCHAIN=local so no toolchain is downloaded and from
``/`` so no module applies, under a timeout: ``go env -json`` (go looked up on
the login PATH and in /usr/local/go/bin), the variables Go's defaults follow,
the user's GOENV file and the lines of their shell files that export Go
settings over it. The sections of that one output are split here.
"""

from __future__ import annotations

import posixpath
import re
import shlex

from pyinfra.api import FactBase

from gotune.facts.collect import Dump
from gotune.facts.model import Facts, GoenvFile, Mount, User, UserFacts
from gotune.facts.storage import place
from gotune.facts.sysfs import parse_int
from gotune.facts.toolchain import GOENV_FILE_MARKER, parse_goenv

EXPORTS_MARKER = "\n@@exports\n"
_GOENV_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


def parse_goenv_file(output: str) -> tuple[GoenvFile | None, list[str]]:
    """(the user's GOENV file, None when GOENV=off; the shell export lines)."""
    _, found, rest = output.partition(GOENV_FILE_MARKER)
    if not found:
        return None, []
    head, _, exports = rest.partition(EXPORTS_MARKER)
    first, _, content = head.partition("\n")
    present, _, path = first.partition(" ")
    lines = [ln.strip() for ln in exports.splitlines() if ln.strip()]
    if path == "off" or not path.startswith("/"):
        return None, lines
    values: dict[str, str] = {}
    for line in content.splitlines():
        m = _GOENV_LINE.match(line.strip())
        if m and m.group(1) not in values:
            values[m.group(1)] = m.group(2)
    return GoenvFile(path=path, exists=present == "1", values=values), lines


def parse_user(dump: Dump, name: str) -> User:
    """The user's passwd entry: ``getent passwd`` (NSS, LDAP), else /etc/passwd."""
    lines = (dump.output(f"passwd {name}") or "").strip().splitlines()
    if not lines:
        lines = [
            x for x in (dump.text("/etc/passwd") or "").splitlines() if x.startswith(name + ":")
        ]
    fields = lines[0].split(":") if lines else []
    if len(fields) < 7 or fields[0] != name:
        return User()
    group = (dump.output(f"group {name}") or "").strip() or None
    return User(
        name=fields[0], uid=parse_int(fields[2]), gid=parse_int(fields[3]), group=group,
        home=fields[5] or None, shell=fields[6] or None,
    )  # fmt: skip


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


def parse_user_facts(dump: Dump, name: str, mounts: list[Mount], unknown: list[str]) -> UserFacts:
    """Everything the collector gathered for one developer user."""
    uf = UserFacts(user=parse_user(dump, name))
    if uf.user.name is None:
        uf.user = User(name=name)
        unknown.append(f"user: {name} not found")
    record = dump.commands.get(f"goenv {name}")
    if record is None:
        skipped = f"goenv {name} not-root" in dump.skipped
        why = "not root, cannot run as the user" if skipped else "not run"
        unknown.append(f"go: {name}: {why}")
        return uf
    out, status = record
    text = out.decode("utf-8", "replace")
    go, env = parse_goenv(text)
    uf.goenv, uf.exports = parse_goenv_file(text)
    if status == 124:
        unknown.append(f"go: {name}: go env timed out")
    elif go is None and env.get("GO"):
        unknown.append(f"go: {name}: go env -json gave no JSON")
    elif go is None:
        unknown.append(f"go: go not found for {name} (login PATH, /usr/local/go/bin)")
    uf.go = go
    home = uf.user.home or env.get("HOME") or None
    cache = go.get("GOCACHE") if go else default_gocache(env, home)
    modcache = go.get("GOMODCACHE") if go else default_gomodcache(env, home)
    if go is None and uf.goenv is not None:  # no go to ask: what `go env -w` wrote still counts
        cache = uf.goenv.values.get("GOCACHE") or cache
        modcache = uf.goenv.values.get("GOMODCACHE") or modcache
    for key, path in (("home", home), ("gocache", cache), ("gomodcache", modcache)):
        if path and path.startswith("/"):
            placement = place(path, mounts)
            if placement is not None:
                uf.paths[key] = placement
    return uf


def apply_users(dump: Dump, facts: Facts, users: list[str]) -> None:
    """Fill facts.users (and, from the first, facts.user, go and storage.paths)."""
    if not users:
        return
    if not dump.live:
        facts.unknown.append("go: not collected from a recorded tree")
        return
    facts.set_users(
        {name: parse_user_facts(dump, name, facts.storage.mounts, facts.unknown) for name in users}
    )


class ResolvedPath(FactBase[dict[str, str]]):
    """
    Where a path leads once its symlinks are followed (missing parts kept as written), and
    who owns the deepest part of it that exists: an operation's check, just before root
    writes into a path a developer user controls (their GOENV file).

    .. code:: python

        {"resolved": "/home/alice/.config/go/env", "owner": "alice"}
    """

    def command(self, path: str) -> str:
        p = shlex.quote(path)
        return (f"r=$(realpath -m -- {p}) && e=$r && while ! test -e \"$e\"; do "
                'e=$(dirname "$e"); done && printf \'%s\\n\' "$r" && stat -c %U -- "$e"')

    def process(self, output: list[str]) -> dict[str, str]:
        resolved, owner = ([*output, "", ""])[:2]
        return {"resolved": resolved, "owner": owner}
