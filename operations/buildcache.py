"""The team build cache's operations: build the GOCACHEPROG helper on the host, measure it.

- ``helper`` writes the helper's Go source (``templates/buildcache-cacheprog.go.j2`` and
  ``buildcache-cacheprog-index.go.j2``, rendered) to ``/usr/local/lib/gotune/buildcache/src``
  and builds it there with the host's own go, offline and with a throwaway cache (never a
  user's GOCACHE or GOCACHEPROG). It builds again only when the sources' SHA-256 differs
  from the one the installed binary was built from (its stamp file); the binary replaces
  the old one by a rename, so a go command never starts half a helper.
- ``measured`` runs the agent's ``buildcache-measure`` on the host (on verify's generated
  workload and cmd/go: a cold first build with the site vs without, a warm no-op with
  the helper vs without; on a builder, one build that warms the site; figures to
  ``/var/lib/gotune/buildcache.json``), unless the record already holds figures for
  this helper, site and go, and the site held something to measure then.

Files go through ``operations.state`` (recorded for undo); the deploy records the
helper's directory as created, so undo removes it whole.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Generator
from typing import Any

from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.facts.files import File

from gotune.agent.launch import agent_sh
from gotune.agent.paths import (
    BUILDCACHE_HELPER,
    BUILDCACHE_HELPER_SHA,
    BUILDCACHE_HELPER_SRC,
    BUILDCACHE_RECORD,
)
from gotune.facts.buildcache import BuildcacheMeasured, HelperSource
from gotune.operations.render import render
from gotune.operations.state import file as state_file
from gotune.operations.state import record_path_cmd

q = shlex.quote

# The helper's files: main.go (the protocol, the local tier, the site), index.go (the
# local tier's index).
TEMPLATES = {"main.go": "buildcache-cacheprog.go.j2",
             "index.go": "buildcache-cacheprog-index.go.j2"}
# What a go command may lose, in total, to a site that fails or answers its misses
# slowly (the bound on "site down": at most 0.1 s per go command).
BUDGET_MS = 100
# After the site failed, go commands in this window do not ask it (a build is many go
# commands: one failure should cost one budget, not one per command).
SITE_DOWN_SECONDS = 30
# The helper's module: the standard library only; go 1.21 for sync.OnceValue.
GO_MOD = "module gotune.local/cacheprog\n\ngo 1.21\n"


def helper_sources() -> dict[str, str]:
    """The helper's Go source files as gotune ships them, by name (``go.mod`` too)."""
    sources = {name: render(template, budget_ms=BUDGET_MS, site_down_seconds=SITE_DOWN_SECONDS)
               for name, template in TEMPLATES.items()}
    return {**sources, "go.mod": GO_MOD}


def source_sha256(sources: dict[str, str]) -> str:
    """What the installed helper's stamp holds when it was built from ``sources``."""
    digest = hashlib.sha256()
    for name in sorted(sources):
        digest.update(f"{name}\0{len(sources[name])}\0{sources[name]}".encode())
    return digest.hexdigest()


def toolchain_guard(go: str) -> str:
    """Shell that fails, saying why, unless every file of ``go``'s GOROOT is root's alone.

    Root runs that go, its compiler and linker to build the helper: a developer's own
    toolchain (``go env GOROOT`` in their home, say) would run their code as root.
    """
    # Not root's, or writable by others or a group not root's (a symlink's mode means nothing).
    unsafe = ("\\( ! -user root -o \\( ! -type l \\( -perm -0002 -o "
              "\\( -perm -0020 ! -group root \\) \\) \\) \\)")
    return (
        f'r=$(dirname "$(dirname "$(readlink -f {q(go)})")") && '
        f'bad=$(find "$r" {unsafe} -print -quit) && '
        # and no one else may swap the directory: its parents are root's, not writable by
        # others (unless sticky, as /tmp)
        'd=$r && while [ -z "$bad" ] && [ "$d" != / ]; do d=$(dirname "$d"); '
        'bad=$(find "$d" -maxdepth 0 \\( ! -user root -o -perm -0002 ! -perm -1000 \\) -print); '
        'done && '
        'if [ -n "$bad" ]; then echo "gotune: not building the build cache helper as root'
        ' with the go in $r: $bad is not root\'s alone; install Go with gotune_go_version'
        ' or gotune_go_source = \'distro\'" >&2; exit 1; fi'
    )


def build_command(go: str, sha: str) -> str:
    """Shell that builds the helper from its source with ``go`` (a root-owned toolchain:
    ``toolchain_guard``), then renames it into place."""
    new = f"{BUILDCACHE_HELPER}.new"
    env = " ".join([
        "PATH=/usr/local/bin:/usr/bin:/bin", 'HOME="$t"', "GOENV=off", 'GOCACHE="$t/cache"',
        'GOPATH="$t/gopath"', 'GOMODCACHE="$t/mod"', "GOTOOLCHAIN=local", "GOFLAGS=",
        "GOPROXY=off", "CGO_ENABLED=0",
    ])  # fmt: skip
    return (
        toolchain_guard(go) + ' && t=$(mktemp -d /tmp/gotune-cacheprog.XXXXXXXX) && '
        f'( cd {q(BUILDCACHE_HELPER_SRC)} && env -i {env} {q(go)} build -trimpath '
        f"-ldflags=-s -o {q(new)} . ); rc=$?; rm -rf \"$t\"; test $rc -eq 0 && "
        f"chmod 0755 {q(new)} && mv -f {q(new)} {q(BUILDCACHE_HELPER)} && "
        f"printf '%s\\n' {sha} > {q(BUILDCACHE_HELPER_SHA)}.new && "
        f"mv -f {q(BUILDCACHE_HELPER_SHA)}.new {q(BUILDCACHE_HELPER_SHA)}"
    )


@operation()
def helper(go: str, sources: dict[str, str] | None = None) -> Generator[Any, None, None]:
    """
    Build the GOCACHEPROG helper on the host with its own go, unless it is built from this
    source already.

    + go: the go binary that builds it (the developers' toolchain)
    + sources: the Go source files by name, go.mod too (default: ``helper_sources()``)

    **Example:**

    .. code:: python

        buildcache.helper(go="/usr/local/go/bin/go")
    """
    sources = helper_sources() if sources is None else sources
    sha = source_sha256(sources)
    if host.get_fact(HelperSource) == sha and host.get_fact(File, path=BUILDCACHE_HELPER):
        host.noop(f"{BUILDCACHE_HELPER} is built from this source ({sha[:12]})")
        return
    yield StringCommand(f"mkdir -p -m 0755 {q(BUILDCACHE_HELPER_SRC)}")
    for name, content in sorted(sources.items()):
        yield from state_file._inner(path=f"{BUILDCACHE_HELPER_SRC}/{name}", content=content,
                                     mode=0o644)
    yield record_path_cmd(BUILDCACHE_HELPER_SHA)
    yield StringCommand(build_command(go, sha))


@operation()
def measured(
    helper_sha: str,
    site: str,
    go_version: str,
    go: str,
    users: list[str],
    cold_runs: int,
    packages: int | None = None,
    cmd_go: bool = False,
    token_file: str | None = None,
    record: str = BUILDCACHE_RECORD,
) -> Generator[Any, None, None]:
    """
    Measure the helper on the host (as the first user) and record the figures; a helper
    that does not help leaves the users' GOENV at once. On a builder, warm the site instead.

    + helper_sha: the helper's source SHA-256 (figures for another one do not count)
    + site: the team build cache the helper asks
    + go_version: the developers' go (``go1.24.3``); go: its binary
    + users: the developer users (the first one builds; all lose an unhelpful helper)
    + cold_runs: cold builds per arm
    + packages: the generated workload's packages (None: verify's default)
    + cmd_go: also build cmd/go
    + token_file: a builder's token file (the first user's copy): warm the site with it
    + record: the JSON file the figures go to

    **Example:**

    .. code:: python

        buildcache.measured(helper_sha="4be1...", site="http://10.0.0.5:3001",
                            go_version="go1.24.3", go="/usr/local/go/bin/go",
                            users=["alice"], cold_runs=3, cmd_go=True)
    """
    m = host.get_fact(BuildcacheMeasured, path=record)
    role = "builder" if token_file else "reader"
    same = (m.get("helper_sha256"), m.get("site"), m.get("go_version"),
            m.get("role", "reader")) == (helper_sha, site, go_version, role)
    if same and not m.get("site_cold"):
        host.noop(f"measured before: {'kept' if m.get('keep') else 'not kept'} ({m.get('why')})")
        return
    argv = [
        "buildcache-measure", "--user", users[0], "--users", ",".join(users), "--go", go,
        "--helper", BUILDCACHE_HELPER, "--site", site, "--helper-sha256", helper_sha,
        "--record", record, "--cold-runs", str(int(cold_runs)), "--remove-unhelpful",
    ]  # fmt: skip
    if packages is not None:
        argv += ["--packages", str(int(packages))]
    if cmd_go:
        argv.append("--cmd-go")
    if token_file:
        argv += ["--token-file", token_file]
    yield record_path_cmd(record)
    yield StringCommand(agent_sh(argv))
