"""The laptop deploy's two halves: plan this host, then make it match the plan.

``plan_current_host`` runs inside pyinfra's host context (plain ``pyinfra``
or ``gotune apply``): it validates the host's settings, gathers the Machine
fact once per developer user and makes the pure plan. ``tune`` turns the plan
into gotune's operations, then installs the SSD wear check and the module
mirror when the settings ask for them (``services``; the developers' GOPROXY
then points at the mirror first). Results per host are kept in ``RUNS`` for the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyinfra import host
from pyinfra.facts.files import FileContents
from pyinfra.facts.server import User, Users, Which

from gotune.agent.paths import AGENT_DIR
from gotune.deploys.agent import install_agent
from gotune.deploys.mirror import (
    developer_goproxy,
    install_mirror,
    installed_cache_dir,
    record_created,
)
from gotune.deploys.wear import install_wear
from gotune.errors import GotuneError
from gotune.facts.gotune_state import ShellExports
from gotune.facts.model import Facts
from gotune.facts.numa_measured import NumaMeasured
from gotune.operations import caches, goenv, numa, toolchain
from gotune.plan import Plan, make_plan
from gotune.plan.caches import ROOT_FS_BASE, TMPFS_ROOT, gotune_base_of
from gotune.settings import Settings, validate_host_data

GOTUNE_VAR_CACHE = "/var/cache/gotune"
# What `go env GOPROXY` says when nothing sets it.
GO_DEFAULT_GOPROXY = "https://proxy.golang.org,direct"


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
    from gotune.facts.machine import Machine

    known = host.get_fact(Users) or {}
    for user in settings.users:
        if user not in known:
            raise GotuneError(f"host {host.name}: user {user} (gotune_users) does not exist there")
    if not settings.users:
        return host.get_fact(Machine), {}
    per_user = {u: host.get_fact(Machine, user=u) for u in settings.users}
    for uf in per_user.values():
        if uf.go is None and uf.user.home:
            uf.go = goenv_without_go(uf.user.home)
    return next(iter(per_user.values())), per_user


def goenv_without_go(home: str) -> dict[str, str] | None:
    """The user's GOENV settings when no ``go`` could run ``go env`` (Go is not installed yet).

    Without this, an apply that installs Go would miss a GOMODCACHE the user set
    with ``go env -w`` and only see it on the next run.
    """
    path = f"{home}/.config/go/env"
    lines = host.get_fact(FileContents, path=path)
    if lines is None:
        return None
    found = {"GOENV": path}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key.strip() in goenv.MANAGED_KEYS and value.strip():
            found[key.strip()] = value.strip()
    return found


def plan_current_host() -> HostPlan:
    """Validate, gather and plan for the host pyinfra is currently working on."""
    settings = validate_host_data(host.data.dict(), host.name)
    facts, users = gather(settings)
    plan = make_plan(facts, settings, users, host.get_fact(NumaMeasured))
    mirror = plan.find("mirror")
    if mirror is not None:
        mirror.current = installed_cache_dir()
        mirror.change = mirror.current != mirror.value
    for user, uf in users.items():
        if uf.user.home:
            for line in host.get_fact(ShellExports, home=uf.user.home):
                plan.warnings.append(
                    f"{user}: {line} overrides the GOENV file where that shell runs"
                )
    hp = HostPlan(settings, plan, facts, users)
    RUNS[host.name] = hp
    return hp


def _gotune_dirs(base: str) -> list[str]:
    """The root-owned gotune directories above a user's gotune base (``<mount>/gotune`` ...)."""
    if base.startswith(ROOT_FS_BASE + "/"):
        return [GOTUNE_VAR_CACHE, ROOT_FS_BASE]
    return [base.rsplit("/", 1)[0]]


def _home_parents(path: str, home: str) -> list[str]:
    """Directories between ``home`` and ``path``'s parent, parents first."""
    out = []
    parent = path.rsplit("/", 1)[0]
    while parent.startswith(home.rstrip("/") + "/"):
        out.append(parent)
        parent = parent.rsplit("/", 1)[0]
    return list(reversed(out))


def tune(hp: HostPlan) -> None:
    """Add the operations that make the current host match its plan."""
    # Toolchain, mounts and units need root; found out now, before any host
    # changes, rather than by an operation failing halfway through.
    who = host.get_fact(User)
    if who != "root":
        raise GotuneError(
            f"{host.name}: apply needs root there (connected as {who}): "
            "run it with sudo, or give the host _sudo=True"
        )
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
    if plan.users:
        accounts: dict[str, Any] = host.get_fact(Users)
        has_cron = bool(
            host.get_fact(Which, command="cron") or host.get_fact(Which, command="crond")
        )
        for user in plan.users:
            _tune_user(hp, user, accounts[user], has_cron)
        if numa.wrappers_wanted(plan.decisions, plan.users[0]):  # the agent measures them
            record_created(name=f"Record {AGENT_DIR} for undo", path=AGENT_DIR)
            install_agent()
        numa.apply_numa(plan.decisions, plan.users[0], systemd=hp.facts.platform.systemd)
    services(hp)


def services(hp: HostPlan) -> None:
    """The SSD wear check and the module mirror, when the host's settings ask for them.

    The wear check comes first: the mirror reads its state file to back off at
    warn and critical (a missing file reads as "unknown", which caches normally).
    """
    if hp.settings.wear_enabled:
        install_wear()
    mirror = hp.plan.find("mirror")
    if mirror is None or not mirror.value:
        return
    bind = hp.plan.find("numa.mirror")
    install_mirror(
        cache_dir=mirror.value,
        numactl_args=list(bind.details.get("numactl_args", [])) if bind else [],
        nodes=list(bind.details.get("nodes", [])) if bind else [],
        numa_reason=bind.reason if bind else "",
    )


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
        if gotune_base_of(snap_dir, user):
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

    if plan.find("mirror") is not None:
        proxy = developer_goproxy(settings)
        before = (uf.go or {}).get("GOPROXY")
        if before and before not in (proxy, GO_DEFAULT_GOPROXY):
            hp.notes.append(
                f"{user}: GOPROXY {before} becomes {proxy} (the mirror's upstream is "
                "gotune_mirror_upstream); gotune undo puts it back"
            )
        values["GOPROXY"] = proxy

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
    base = gotune_base_of(path, user)
    if base:
        caches.root_dirs(name="gotune cache directories", paths=_gotune_dirs(base))
        caches.user_dirs(
            name=f"{user}'s gotune directory", user=user, gid=gid, paths=[base], record=True
        )
    elif parent.startswith(home.rstrip("/") + "/"):
        caches.user_dirs(
            name=f"{user}'s cache parent directories",
            user=user,
            gid=gid,
            mode=0o755,
            paths=_home_parents(path, home),
        )
