"""What goes into each developer user's GOENV file: the one list of keys gotune may write.

Go settings go where every Go process sees them: the per-user GOENV file (what
``go env -w`` writes), which an IDE started from a desktop reads too. The caches
and the mirror decide values; this module collects them into one decision per
user, and warns about shell exports that override the file. The build cache's
helper goes in as GOCACHEPROG (``gotune.plan.buildcache.gocacheprog``).
"""

from __future__ import annotations

from gotune.facts.model import UserFacts
from gotune.plan.buildcache import gocacheprog
from gotune.plan.model import (
    BuildcacheHelper,
    Decision,
    GoenvDecision,
    MirrorPlan,
    TmpfsCache,
    UserCaches,
    WslGopath,
)

# Every key gotune may write into a GOENV file; nothing else is ever touched (GOPATH
# only on WSL2, to move it off Windows' drives; GOCACHEPROG only naming gotune's helper).
GOENV_KEYS = ("GOCACHE", "GOMODCACHE", "GOTMPDIR", "GOPROXY", "GOPATH", "GOCACHEPROG")


def goenv_path(uf: UserFacts) -> str | None:
    """The user's GOENV file: what ``go env GOENV`` says, else Go's default; None when off."""
    path = (uf.go or {}).get("GOENV") or (uf.goenv.path if uf.goenv else None)
    if path == "off":
        return None
    return path or f"{uf.user.home}/.config/go/env"


def _wanted(d: Decision) -> bool:
    """A cache decision gotune writes to GOENV: every change, and a tmpfs GOCACHE always
    (it only exists because gotune mounts it)."""
    return d.change or isinstance(d, TmpfsCache)


def plan_goenv(
    uf: UserFacts, caches: UserCaches, mirror: MirrorPlan | None,
    gopath: WslGopath | None = None,
    helper: BuildcacheHelper | None = None,
) -> tuple[GoenvDecision | None, list[str]]:
    """The user's GOENV decision (None: nothing to write) and warnings.

    + uf: the user's facts (their GOENV file, shell exports)
    + caches: the user's cache decisions
    + mirror: the mirror's decisions (its GOPROXY goes in), or None
    + gopath: on WSL2, the user's GOPATH moved off Windows' drives, or None
    + helper: the build cache helper (its GOCACHEPROG goes in, or gotune's goes out), or None
    """
    user = str(uf.user.name)
    values: dict[str, str | None] = {d.key: d.value for d in caches.decisions() if _wanted(d)}
    if mirror is not None:
        values["GOPROXY"] = mirror.cache.goproxy
    if gopath is not None:
        values["GOPATH"] = gopath.value
    has_prog, prog = gocacheprog(uf, helper)
    if has_prog:
        values["GOCACHEPROG"] = prog
    warnings = [f"{user}: {line} overrides the GOENV file where that shell runs"
                for line in uf.exports]  # fmt: skip
    path = goenv_path(uf)
    if not values:
        return None, warnings
    if path is None:
        warnings.append(f"{user}: GOENV is off, so gotune cannot set {', '.join(values)}")
        return None, warnings
    now = uf.goenv.values if uf.goenv else {}
    differ = [k for k, v in values.items() if now.get(k) != v]
    before = now.get("GOPROXY")
    if mirror is not None and before and "GOPROXY" in differ:
        warnings.append(f"{user}: GOPROXY {before} becomes {values['GOPROXY']} (the mirror's "
                        "upstream is gotune_mirror_upstream); gotune undo puts it back")
    shown = ", ".join(f"{k}={v if v is not None else '(unset)'}" for k, v in values.items())
    return GoenvDecision(
        key="GOENV", value=path, medium="file", user=user, current=path if uf.goenv and
        uf.goenv.exists else None, change=bool(differ), values=values,
        reason=f"{shown} in {user}'s GOENV file, read by every go command (shells and IDEs)"
        + (f"; changes {', '.join(differ)}" if differ else ""),
        facts_used=[f"goenv.{k}={now.get(k)}" for k in values],
    ), warnings  # fmt: skip
