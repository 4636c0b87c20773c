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

from typing import Any

from gotune.facts.model import Facts
from gotune.plan.model import Decision
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
from gotune.settings import Settings

TMPFS_ROOT = "/var/cache/gotune/tmpfs"
ROOT_FS_BASE = "/var/cache/gotune/users"
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
    mode = settings["gotune_gocache_tmpfs"]
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
        min_ram = settings.gib("gotune_tmpfs_min_ram_gib")
        if usable < min_ram:
            return None, f"{where} is below gotune_tmpfs_min_ram_gib ({gib(min_ram)})", used
    cap = min(usable // 4, settings.gib("gotune_tmpfs_max_gib")) // max(n_users, 1)
    cap = cap // MIB * MIB
    if cap < MIN_TMPFS_BYTES:
        share = f" shared by {n_users} users" if n_users > 1 else ""
        return None, f"a quarter of {where}{share} is under {gib(MIN_TMPFS_BYTES)}", used
    return cap, f"{where} allows a {gib(cap)} tmpfs (a quarter of memory at most)", used


def _describe(place: Place) -> str:
    if place.mount is None:
        return "a filesystem the facts do not list"
    return f"{place.class_} {place.fstype or '?'} at {place.mount}"


def _target(
    facts: Facts, home: Place, min_free: int, user: str
) -> tuple[str | None, Place | None, str]:
    """The persistent base directory for caches (None: Go's defaults in home), and why."""
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
            return (
                gotune_base(m.path, user),
                place,
                f"{why}; {m.class_} {m.path} has {gib(m.free_bytes)} free",
            )
    if home_problem is None:
        return None, home, f"home ({_describe(home)}) is the fastest local storage with room"
    return None, None, f"no local persistent filesystem with room ({home_problem})"


def _persistent(
    key: str,
    current: str,
    home_default: str,
    sub: str,
    target: tuple[str | None, Place | None, str],
    uf: Facts,
    user: str,
    used: list[str],
) -> Decision:
    base, tplace, why = target
    cur = place_of(uf, current, key.lower())
    used = [*used, f"{key}={current} ({_describe(cur)})"]
    problem = unsuitable(cur)
    if tplace is None:
        reason = f"{key} stays: {why}" + (f"; today {problem}" if problem else "")
        return Decision(key, current, cur.class_, reason, used, False, user, current)
    want = f"{base}/{sub}" if base else home_default
    if want == current or (problem is None and rank(cur.class_) <= rank(tplace.class_)):
        reason = f"already on {_describe(cur)}: nothing faster with room"
        return Decision(key, current, cur.class_, reason, used, False, user, current)
    now = problem or f"today on {_describe(cur)}"
    return Decision(
        key,
        want,
        tplace.class_,
        f"{now}; {why}",
        used,
        True,
        user,
        current,
        {"mount": tplace.mount},
    )


def plan_user_caches(
    host: Facts, uf: Facts, user: str, settings: Settings, n_users: int
) -> tuple[list[Decision], list[str]]:
    """GOMODCACHE, GOCACHE and GOTMPDIR decisions for one developer user.

    + host: the host's facts (memory, platform, mounts)
    + uf: the facts gathered for this user (home, ``go env``, path placements)
    + n_users: developer users sharing the host's RAM for tmpfs caches
    """
    home = uf.user.home
    if not home:
        return [], [f"{user}: home directory unknown; caches left alone"]
    go = uf.go or {}
    min_free = settings.gib("gotune_min_free_gib")
    home_place = place_of(uf, home, "home")
    used = [
        f"storage.paths.home={home} ({_describe(home_place)}, {gib(home_place.free_bytes)} free)"
    ]
    target = _target(uf, home_place, min_free, user)
    if target[1] is not None and target[1].mount != home_place.mount:
        used.append(
            f"storage.mounts[{target[1].mount}]={target[1].class_} {gib(target[1].free_bytes)} free"
        )

    gomod_now = go.get("GOMODCACHE") or f"{home}/go/pkg/mod"
    gomod = _persistent(
        "GOMODCACHE", gomod_now, f"{home}/go/pkg/mod", "mod", target, uf, user, used
    )
    decisions = [gomod]
    warnings: list[str] = []

    gocache_now = go.get("GOCACHE") or f"{home}/.cache/go-build"
    size, tmpfs_why, tmpfs_used = tmpfs_budget(host, settings, n_users)
    base = gotune_base_of(gomod.value, user) if gomod.value else None
    snapshot_dir = base or f"{home}/.cache/gotune"
    if size is not None:
        mp = tmpfs_mountpoint(user)
        want = f"{mp}/go-build"
        cur = place_of(uf, gocache_now, "gocache")
        change = not (gocache_now == want and cur.fstype == "tmpfs")
        details: dict[str, Any] = {
            "mountpoint": mp,
            "size_bytes": size,
            "snapshot": f"{snapshot_dir}/go-build.tar",
        }
        decisions.append(
            Decision(
                "GOCACHE",
                want,
                "tmpfs",
                f"GOCACHE on tmpfs: {tmpfs_why}",
                [*tmpfs_used, f"GOCACHE={gocache_now} ({_describe(cur)})"],
                change,
                user,
                gocache_now,
                details,
            )
        )
        gotmp_now = go.get("GOTMPDIR") or None
        decisions.append(
            Decision(
                "GOTMPDIR",
                f"{mp}/tmp",
                "tmpfs",
                "GOTMPDIR on the GOCACHE tmpfs: build temp files stay in RAM",
                ["GOCACHE on tmpfs"],
                gotmp_now != f"{mp}/tmp",
                user,
                gotmp_now,
                {"mountpoint": mp},
            )
        )
        return decisions, warnings

    gocache = _persistent(
        "GOCACHE",
        gocache_now,
        f"{home}/.cache/go-build",
        "go-build",
        target,
        uf,
        user,
        [*used, *tmpfs_used],
    )
    gocache.reason = f"{gocache.reason} (no tmpfs: {tmpfs_why})"
    decisions.append(gocache)
    gotmp_now = go.get("GOTMPDIR") or None
    ours = bool(gotmp_now and gotmp_now.startswith(TMPFS_ROOT + "/"))
    decisions.append(
        Decision(
            "GOTMPDIR",
            None if ours else gotmp_now,
            "default",
            "GOTMPDIR stays the system temp dir: GOCACHE is not on tmpfs",
            ["GOCACHE not on tmpfs"],
            ours,
            user,
            gotmp_now,
        )
    )
    return decisions, warnings
