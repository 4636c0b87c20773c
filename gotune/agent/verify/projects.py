"""The user's own projects (``gotune verify --project DIR``): built as they would build them.

Each project is built where it is, as the developer user, with ``go build ./...``
and ``go test -run XXX ./...`` (every test binary compiled and linked, no test run),
in each variant's verify caches, never touching the project's files or the user's
caches:

- nothing is written into the project: a lone main package's binary goes to
  /dev/null, builds run with ``-mod=readonly`` semantics
  (a ``-mod=mod`` in GOFLAGS is dropped), ``git status`` for VCS stamping takes no
  optional locks (``GIT_OPTIONAL_LOCKS=0``), module downloads go to a scratch copy of
  go.mod and go.sum (``-modfile``);
- the modules come from the user's own module cache read as a GOPROXY
  (``file://$GOMODCACHE/cache/download``) into each variant's verify module cache,
  with the network off (``GOPROXY=off`` while timing).

A directory that is not a Go module, cannot be read, or belongs to another user is
not built; its error is reported for that project only. Standard library only.
"""

from __future__ import annotations

import os
import pwd

# What a project's build benchmarks run (``go test -run XXX`` for the compile cost:
# no test name matches, so every test binary is built and linked, and none runs).
# ``-o /dev/null``: a module whose ./... is one main package would get its binary
# written into the project (Go 1.19 and later discard it here).
BUILD = ("build", "-o", os.devnull, "./...")
TEST = ("test", "-run", "XXX", "./...")
KINDS = {"go build ./...": BUILD, "go test -run XXX ./...": TEST}
# A project's module requirements are read here, copied to scratch for `go mod download`.
MODULE_FILES = ("go.mod", "go.sum")


def benchmark_name(kind: str, directory: str) -> str:
    """``go build ./... (/home/dev/src/api)``."""
    return f"{kind} ({directory})"


def problem(directory: str, uid: int) -> str | None:
    """Why ``directory`` cannot be built as the user ``uid``, or None.

    + directory: an absolute path, as given on the command line or in gotune_projects
    """
    if not os.path.isabs(directory):
        return f"{directory}: not an absolute path"
    try:
        st = os.stat(directory)
    except OSError as exc:
        return f"{directory}: {exc.strerror}"
    if not os.path.isdir(directory):
        return f"{directory}: not a directory"
    if st.st_uid != uid:
        try:
            owner = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            owner = str(st.st_uid)
        me = _name(uid)
        return (f"{directory} is owned by {owner}, not {me}: verify builds a project as "
                f"{me}, only one of {me}'s own")
    if not os.access(directory, os.R_OK | os.X_OK):
        return f"{directory}: permission denied"
    if not os.path.isfile(os.path.join(directory, "go.mod")):
        return f"{directory} is not a Go module (no go.mod): verify builds modules only"
    return None


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def build_env(env: dict[str, str], modcache: str) -> dict[str, str]:
    """A variant's environment for timing a project: its verify module cache, no network,
    nothing written into the project."""
    flags = " ".join(f for f in env.get("GOFLAGS", "").split() if f != "-mod=mod")
    out = dict(env, GOMODCACHE=modcache, GOPROXY="off", GIT_OPTIONAL_LOCKS="0", GOFLAGS=flags)
    if not flags:
        out.pop("GOFLAGS")
    return out


def fill_env(env: dict[str, str], modcache: str, source: str) -> dict[str, str]:
    """The environment that copies a project's modules from the user's module cache
    (``source``, read as a GOPROXY) into a variant's verify module cache."""
    return dict(env, GOMODCACHE=modcache, GOPROXY=f"file://{source}/cache/download",
                GOSUMDB="off", GONOSUMDB="", GOPRIVATE="", GONOPROXY="", GOWORK="off",
                GOFLAGS="-mod=mod")
