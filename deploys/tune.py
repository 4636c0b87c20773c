"""The laptop deploy's two halves: plan this host, then make it match the plan.

``plan_current_host`` runs inside pyinfra's host context (plain ``pyinfra``
or ``gotune apply``): it validates the host's settings, gathers the Machine
fact once per developer user and makes the pure plan. ``tune`` turns the plan
into gotune's operations. Results per host are kept in ``RUNS`` for the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyinfra import host
from pyinfra.facts.server import Users, Which

from facts.gotune_state import ShellExports
from facts.model import Facts
from facts.numa_measured import NumaMeasured
from gotune.errors import GotuneError
from gotune.plan import Plan, make_plan
from gotune.plan.caches import ROOT_FS_BASE, TMPFS_ROOT
from gotune.settings import Settings, validate_host_data
from operations import caches, goenv, numa, toolchain

GOTUNE_VAR_CACHE = "/var/cache/gotune"


@dataclass
class HostPlan:
    settings: Settings
    plan: Plan
    facts: Facts
    users: dict[str, Facts]
    notes: list[str] = field(default_factory=list)  # what apply did not do, and why


RUNS: dict[str, HostPlan] = {}


def gather(settings: Settings) -> tuple[Facts, dict[str, Facts]]:
    """The host's facts, and each developer user's (one Machine round trip per user)."""
    from facts.machine import Machine

    known = host.get_fact(Users) or {}
    for user in settings.users:
        if user not in known:
            raise GotuneError(f"host {host.name}: user {user} (gotune_users) does not exist there")
    if not settings.users:
        return host.get_fact(Machine), {}
    per_user = {u: host.get_fact(Machine, user=u) for u in settings.users}
    return next(iter(per_user.values())), per_user


def plan_current_host() -> HostPlan:
    """Validate, gather and plan for the host pyinfra is currently working on."""
    settings = validate_host_data(host.data.dict(), host.name)
    facts, users = gather(settings)
    plan = make_plan(facts, settings, users, host.get_fact(NumaMeasured))
    for user, uf in users.items():
        if uf.user.home:
            for line in host.get_fact(ShellExports, home=uf.user.home):
                plan.warnings.append(
                    f"{user}: {line} overrides the GOENV file where that shell runs"
                )
    hp = HostPlan(settings, plan, facts, users)
    RUNS[host.name] = hp
    return hp


def _gotune_dirs(path: str) -> list[str]:
    """The root-owned gotune directories above a cache path (``<mount>/gotune`` ...)."""
    if path.startswith(ROOT_FS_BASE + "/"):
        return [GOTUNE_VAR_CACHE, ROOT_FS_BASE]
    head = path.split("/gotune/", 1)[0]
    return [f"{head}/gotune"]


def _home_parents(path: str, home: str) -> list[str]:
    """Directories between ``home`` and ``path``'s parent, parents first."""
    out = []
    parent = path.rsplit("/", 1)[0]
    while parent.startswith(home.rstrip("/") + "/"):
        out.append(parent)
        parent = parent.rsplit("/", 1)[0]
    return list(reversed(out))


def _is_gotune_base(path: str) -> bool:
    return "/gotune/" in path and not path.startswith(TMPFS_ROOT)


def tune(hp: HostPlan) -> None:
    """Add the operations that make the current host match its plan."""
    settings, plan = hp.settings, hp.plan
    if settings.go_version:
        if settings["gotune_go_source"] == "distro":
            toolchain.go_distro(name="Go toolchain from the distribution")
        else:
            toolchain.go_tarball(
                name=f"Go {settings.go_version} toolchain",
                version=settings.go_version,
                tarball=settings["gotune_go_tarball"],
                sha256=settings["gotune_go_sha256"],
            )
    if not plan.users:
        return
    accounts: dict[str, Any] = host.get_fact(Users)
    has_cron = bool(host.get_fact(Which, command="cron") or host.get_fact(Which, command="crond"))
    for user in plan.users:
        _tune_user(hp, user, accounts[user], has_cron)
    numa.apply_numa(plan.decisions, plan.users[0], systemd=hp.facts.platform.systemd)


def _tune_user(hp: HostPlan, user: str, account: dict[str, Any], has_cron: bool) -> None:
    plan, settings = hp.plan, hp.settings
    uid, gid, group = int(account["uid"]), int(account["gid"]), str(account["group"])
    uf = hp.users[user]
    home = uf.user.home or account["home"]
    systemd = hp.facts.platform.systemd
    values: dict[str, str | None] = {}

    gomod = plan.find("GOMODCACHE", user)
    if gomod and gomod.change and gomod.value and gomod.current:
        _make_parent(gomod.value, home, user, gid)
        caches.move(
            name=f"move {user}'s GOMODCACHE to {gomod.value}",
            user=user,
            key="GOMODCACHE",
            src=gomod.current,
            dst=gomod.value,
        )
        values["GOMODCACHE"] = gomod.value

    gocache = plan.find("GOCACHE", user)
    gotmp = plan.find("GOTMPDIR", user)
    if gocache and gocache.medium == "tmpfs" and gocache.value:
        mp, size = gocache.details["mountpoint"], int(gocache.details["size_bytes"])
        snapshot = gocache.details["snapshot"]
        caches.root_dirs(name="gotune tmpfs mount points", paths=[GOTUNE_VAR_CACHE, TMPFS_ROOT, mp])
        caches.tmpfs(
            name=f"{user}'s GOCACHE tmpfs ({size >> 20} MiB) at {mp}",
            user=user,
            uid=uid,
            gid=gid,
            mountpoint=mp,
            size_bytes=size,
            systemd=systemd,
        )
        caches.user_dirs(
            name=f"{user}'s GOCACHE and GOTMPDIR on the tmpfs",
            user=user,
            gid=gid,
            paths=[gocache.value, f"{mp}/tmp"],
        )
        snap_dir = snapshot.rsplit("/", 1)[0]
        if _is_gotune_base(snap_dir) and not snap_dir.startswith(home + "/"):
            caches.root_dirs(name="gotune cache directories", paths=_gotune_dirs(snap_dir))
            caches.user_dirs(
                name=f"{user}'s gotune directory", user=user, gid=gid, paths=[snap_dir], record=True
            )
        else:
            caches.user_dirs(
                name=f"{user}'s home cache directories",
                user=user,
                gid=gid,
                mode=0o755,
                paths=_home_parents(snap_dir, home),
            )
            caches.user_dirs(
                name=f"{user}'s GOCACHE snapshot directory",
                user=user,
                gid=gid,
                paths=[snap_dir],
                record=True,
            )
        caches.snapshots(
            name=f"{user}'s GOCACHE snapshots",
            user=user,
            cache=gocache.value,
            snapshot=snapshot,
            size_bytes=size,
            minutes=int(settings["gotune_snapshot_minutes"]),
            systemd=systemd,
            mountpoint=mp,
        )
        if not systemd and not has_cron:
            hp.notes.append(
                f"{user}: no systemd and no cron daemon: the GOCACHE tmpfs is mounted at "
                "boot (fstab) but is saved, restored and trimmed only when cron runs"
            )
        if gocache.change:
            values["GOCACHE"] = gocache.value
        if gotmp and gotmp.change:
            values["GOTMPDIR"] = gotmp.value
    elif gocache and gocache.change and gocache.value:
        _make_parent(gocache.value, home, user, gid)
        values["GOCACHE"] = gocache.value
        if gotmp and gotmp.change:
            values["GOTMPDIR"] = gotmp.value

    path = goenv.goenv_path(home, uf.go)
    if values and path is None:
        hp.plan.warnings.append(f"{user}: GOENV is off, so gotune cannot set {', '.join(values)}")
    elif values and path:
        goenv.settings(
            name=f"{user}'s GOENV ({', '.join(values)})",
            user=user,
            group=group,
            home=home,
            path=path,
            values=values,
        )


def _make_parent(path: str, home: str, user: str, gid: int) -> None:
    """The parent directory of a cache path, owned by the user."""
    parent = path.rsplit("/", 1)[0]
    if _is_gotune_base(path):
        caches.root_dirs(name="gotune cache directories", paths=_gotune_dirs(path))
        caches.user_dirs(
            name=f"{user}'s gotune directory", user=user, gid=gid, paths=[parent], record=True
        )
    elif parent.startswith(home.rstrip("/") + "/"):
        caches.user_dirs(
            name=f"{user}'s cache parent directories",
            user=user,
            gid=gid,
            mode=0o755,
            paths=_home_parents(path, home),
        )
