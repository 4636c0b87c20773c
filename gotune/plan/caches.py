"""Where GOMODCACHE, GOCACHE and GOTMPDIR go: the cache placement rules.

Layout (decided here, created by ``operations/caches.py``):

- The user's home filesystem is the default: Go's own paths (``~/go/pkg/mod``,
  ``~/.cache/go-build``) are kept when home is already the best place.
- Another filesystem is chosen only when it is local, persistent, writable,
  of a faster class than home, and has ``gotune_min_free_gib`` free. The caches
  then live in a gotune-owned directory on it: ``<mount>/gotune/<user>/{mod,go-build}``
  (``/var/cache/gotune/users/<user>/...`` when that filesystem is ``/``).
- A GOCACHE on tmpfs is mounted at ``/var/cache/gotune/tmpfs/<user>``, with
  ``go-build/`` (GOCACHE) and ``tmp/`` (GOTMPDIR) inside, and is saved to
  ``go-build.tar`` next to the persistent caches (``~/.cache/gotune/`` when they
  stay in home).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gotune.agent.paths import TMPFS_ROOT, USERS_CACHE_ROOT
from gotune.facts.model import Facts, UserFacts
from gotune.plan.goenv import goenv_path
from gotune.plan.model import Decision, MovedCache, TmpfsCache, TmpfsTmpdir, UserCaches
from gotune.plan.storage import (
    GIB,
    Place,
    candidates,
    gib,
    has_room,
    place_of,
    rank,
    unsuitable,
)
from gotune.plan.userpaths import inside, user_path_problems
from gotune.settings import Settings

# gotune's per-user directories on / (elsewhere: <mount>/gotune/<user>).
ROOT_FS_BASE = USERS_CACHE_ROOT
# Below 1 GiB a tmpfs GOCACHE holds less than one mid-sized project's build
# outputs, so the trim would evict what the next build needs: disk is better.
MIN_TMPFS_BYTES = 1 * GIB
# tmpfs sizes are written in MiB: whole numbers in fstab and mount units.
MIB = 1024**2


def tmpfs_mountpoint(user: str) -> str:
    return f"{TMPFS_ROOT}/{user}"


def gotune_base(mount: str, user: str) -> str:
    return f"{ROOT_FS_BASE}/{user}" if mount == "/" else f"{mount.rstrip('/')}/gotune/{user}"


def gotune_base_of(path: str, user: str) -> str | None:
    """The gotune-owned directory (``gotune_base``) that ``path`` is, or holds a cache in."""
    marker = (
        f"/gotune/{user}" if not path.startswith(ROOT_FS_BASE + "/") else f"{ROOT_FS_BASE}/{user}"
    )
    if path.endswith(marker):
        return path
    head, _, leaf = path.rpartition("/")
    if head.endswith(marker) and leaf in ("mod", "go-build", "go-build.tar"):
        return head
    return None


def tmpfs_budget(
    facts: Facts, settings: Settings, n_users: int
) -> tuple[int | None, str, list[str]]:
    """The GOCACHE tmpfs size for one user (None: no tmpfs), why, and the facts used."""
    mode = settings.gocache_tmpfs
    ram = facts.memory.total_bytes
    limit = facts.platform.cgroup_memory_limit_bytes
    virt = facts.platform.virtualization
    used = [f"memory.total_bytes={gib(ram)}", f"platform.virtualization={virt}"]
    if limit is not None:
        used.append(f"platform.cgroup_memory_limit_bytes={gib(limit)}")
    if mode == "never":
        return None, "gotune_gocache_tmpfs is 'never'", used
    if ram is None:
        return None, "RAM size is unknown", used
    usable = min(ram, limit) if limit is not None else ram
    where = f"{gib(usable)} {'memory limit' if limit is not None and limit < ram else 'RAM'}"
    if mode == "auto":
        if virt.startswith("container"):
            return (
                None,
                f"in a container ({virt}) a tmpfs mount needs privileges it rarely has",
                used,
            )
        min_ram = settings.gib(settings.tmpfs_min_ram_gib)
        if usable < min_ram:
            return None, f"{where} is below gotune_tmpfs_min_ram_gib ({gib(min_ram)})", used
    cap = min(usable // 4, settings.gib(settings.tmpfs_max_gib)) // max(n_users, 1)
    cap = cap // MIB * MIB
    if cap < MIN_TMPFS_BYTES:
        share = f" shared by {n_users} users" if n_users > 1 else ""
        return None, f"a quarter of {where}{share} is under {gib(MIN_TMPFS_BYTES)}", used
    return cap, f"{where} allows a {gib(cap)} tmpfs (a quarter of memory at most)", used


def _describe(place: Place) -> str:
    if place.mount is None:
        return "a filesystem the facts do not list"
    return f"{place.class_} {place.fstype or '?'} at {place.mount}"


@dataclass(frozen=True)
class Target:
    """Where persistent caches should live: gotune's directory on a faster filesystem
    (``base``), or Go's defaults in home (``base`` None); ``place`` None: nowhere suitable."""

    base: str | None
    place: Place | None
    why: str


def _target(facts: Facts, home: Place, min_free: int, user: str) -> Target:
    """The persistent base directory for caches, and why."""
    home_problem = unsuitable(home)
    if home_problem is None and not has_room(home.free_bytes, min_free):
        home_problem = f"home has only {gib(home.free_bytes)} free"
    home_rank = rank(home.class_) if home_problem is None else 99
    for m in candidates(facts, min_free):
        if m.path == home.mount:
            continue
        if rank(m.class_) < home_rank:
            place = Place(m.path, m.path, m.fstype, m.class_, m.free_bytes)
            why = (
                f"home is unsuitable ({home_problem})" if home_problem else f"home is {home.class_}"
            )
            return Target(
                gotune_base(m.path, user),
                place,
                f"{why}; {m.class_} {m.path} has {gib(m.free_bytes)} free",
            )
    if home_problem is None:
        why = f"home ({_describe(home)}) is the fastest local storage with room"
        return Target(None, home, why)
    return Target(None, None, f"no local persistent filesystem with room ({home_problem})")


def _persistent(
    key: str, current: str, home_default: str, sub: str, target: Target, uf: UserFacts,
    facts: Facts, used: list[str],
) -> Decision:
    """Keep a persistent cache where it is, or move it to the target."""
    user = uf.user.name
    cur = place_of(facts, current, uf.paths.get(key.lower()))
    used = [*used, f"{key}={current} ({_describe(cur)})"]
    problem = unsuitable(cur)
    def keep(reason: str) -> Decision:
        return Decision(key=key, value=current, medium=cur.class_, reason=reason,
                        facts_used=used, user=user, current=current)

    if target.place is None:
        return keep(f"{key} stays: {target.why}" + (f"; today {problem}" if problem else ""))
    want = f"{target.base}/{sub}" if target.base else home_default
    if want == current or (problem is None and rank(cur.class_) <= rank(target.place.class_)):
        return keep(f"already on {_describe(cur)}: nothing faster with room")
    now = problem or f"today on {_describe(cur)}"
    return MovedCache(key=key, value=want, medium=target.place.class_,
                      reason=f"{now}; {target.why}", facts_used=used, change=True, user=user,
                      current=current, mount=target.place.mount)


def _tmpfs_caches(
    uf: UserFacts, facts: Facts, size: int, why: str, used: list[str], snapshot_dir: str
) -> tuple[Decision, Decision]:
    """GOCACHE and GOTMPDIR on the user's tmpfs."""
    user = str(uf.user.name)
    home = str(uf.user.home)
    gocache_now = uf.setting("GOCACHE") or f"{home}/.cache/go-build"
    mp = tmpfs_mountpoint(user)
    want = f"{mp}/go-build"
    cur = place_of(facts, gocache_now, uf.paths.get("gocache"))
    gocache = TmpfsCache(
        key="GOCACHE", value=want, medium="tmpfs", reason=f"GOCACHE on tmpfs: {why}",
        facts_used=[*used, f"GOCACHE={gocache_now} ({_describe(cur)})"],
        change=not (gocache_now == want and cur.fstype == "tmpfs"), user=user,
        current=gocache_now, mountpoint=mp, size_bytes=size,
        snapshot=f"{snapshot_dir}/go-build.tar",
    )  # fmt: skip
    gotmp_now = uf.setting("GOTMPDIR")
    gotmp = TmpfsTmpdir(
        key="GOTMPDIR", value=f"{mp}/tmp", medium="tmpfs",
        reason="GOTMPDIR on the GOCACHE tmpfs: build temp files stay in RAM",
        facts_used=["GOCACHE on tmpfs"], change=gotmp_now != f"{mp}/tmp", user=user,
        current=gotmp_now, mountpoint=mp,
    )  # fmt: skip
    return gocache, gotmp


def plan_user_caches(
    facts: Facts, uf: UserFacts, settings: Settings, n_users: int
) -> tuple[UserCaches | None, list[str]]:
    """GOMODCACHE, GOCACHE and GOTMPDIR decisions for one developer user.

    + facts: the host's facts (memory, platform, mounts)
    + uf: the developer user's facts (home, ``go env``, path placements)
    + n_users: developer users sharing the host's RAM for tmpfs caches
    """
    user, home = uf.user.name, uf.user.home
    if not user or not home:
        return None, [f"{user}: home directory unknown; caches left alone"]
    # Root acts on these paths, which the user chose: plain ones only, and a GOENV file
    # (written as root) only in the user's home. Caches are left alone with it, so go
    # never points at a moved cache's old place.
    goenv = goenv_path(uf)
    problems = user_path_problems(user, {
        "home": home, "GOMODCACHE": uf.setting("GOMODCACHE"), "GOCACHE": uf.setting("GOCACHE"),
        "GOTMPDIR": uf.setting("GOTMPDIR"), "GOENV": goenv})  # fmt: skip
    if not problems and goenv is not None and not inside(goenv, home):
        problems.append(f"{user}: GOENV {goenv!r} is outside {home}; gotune writes a GOENV file "
                        f"only in the user's home, and leaves {user}'s caches and GOENV alone")
    if problems:
        return None, problems
    min_free = settings.gib(settings.min_free_gib)
    home_place = place_of(facts, home, uf.paths.get("home"))
    used = [
        f"storage.paths.home={home} ({_describe(home_place)}, {gib(home_place.free_bytes)} free)"
    ]
    target = _target(facts, home_place, min_free, user)
    if target.place is not None and target.place.mount != home_place.mount:
        used.append(
            f"storage.mounts[{target.place.mount}]={target.place.class_} "
            f"{gib(target.place.free_bytes)} free"
        )
    gomod_now = uf.setting("GOMODCACHE") or f"{home}/go/pkg/mod"
    gomod = _persistent(
        "GOMODCACHE", gomod_now, f"{home}/go/pkg/mod", "mod", target, uf, facts, used
    )
    size, tmpfs_why, tmpfs_used = tmpfs_budget(facts, settings, n_users)
    if size is not None:
        base = gotune_base_of(gomod.value, user) if gomod.value else None
        gocache, gotmp = _tmpfs_caches(
            uf, facts, size, tmpfs_why, tmpfs_used, base or f"{home}/.cache/gotune"
        )
        return UserCaches(gomod, gocache, gotmp), []
    gocache_now = uf.setting("GOCACHE") or f"{home}/.cache/go-build"
    gocache = _persistent(
        "GOCACHE", gocache_now, f"{home}/.cache/go-build", "go-build", target, uf, facts,
        [*used, *tmpfs_used],
    )  # fmt: skip
    gocache = dataclasses.replace(gocache, reason=f"{gocache.reason} (no tmpfs: {tmpfs_why})")
    gotmp_now = uf.setting("GOTMPDIR")
    ours = bool(gotmp_now and gotmp_now.startswith(TMPFS_ROOT + "/"))
    # A GOTMPDIR on a network or host-shared filesystem (WSL2's /mnt/c) slows every
    # compile and link it holds the temporary files of: back to the system temp dir.
    remote = bool(gotmp_now) and place_of(facts, str(gotmp_now)).network
    gotmp = Decision(
        key="GOTMPDIR", value=None if ours or remote else gotmp_now, medium="default",
        reason=(f"GOTMPDIR {gotmp_now} is on a network filesystem: back to the system temp "
                "dir" if remote else "GOTMPDIR stays the system temp dir: GOCACHE is not on "
                "tmpfs"),
        facts_used=["GOCACHE not on tmpfs"], change=ours or remote, user=user,
        current=gotmp_now,
    )  # fmt: skip
    return UserCaches(gomod, gocache, gotmp), []
