"""The caches component: each developer user's GOMODCACHE, GOCACHE and GOTMPDIR.

Save → apply → verify → undo, side by side:

- plan: ``gotune/plan/caches.py`` (where each cache goes, and why)
- apply: here, with ``operations/caches.py`` — a moved cache is moved (rename, or
  copy-compare-delete across filesystems), a tmpfs GOCACHE is mounted (a systemd
  mount unit, or an fstab line), restored at boot and saved periodically and at
  shutdown (``templates/caches-*.j2``); the values reach Go through the user's GOENV
  file (``deploys/goenv.py``)
- verify: ``gotune/verify/checks/caches.py`` (owner, writable, filesystem as planned,
  tmpfs capped and not full)
- undo: every directory, mount, unit and move is recorded first
  (``operations/state.py``); ``gotune undo`` moves caches back, never deletes them
"""

from __future__ import annotations

from typing import Any

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Users

from gotune.agent.paths import CACHE_ROOT
from gotune.deploys.goenv import user_goenv
from gotune.operations import caches
from gotune.plan.caches import ROOT_FS_BASE, TMPFS_ROOT, gotune_base_of
from gotune.plan.model import CACHE_KEYS, HostPlan, MovedCache, TmpfsCache
from gotune.plan.userpaths import inside

# gotune's own cache area on /, parent of the tmpfs mount points and users' dirs.
GOTUNE_VAR_CACHE = CACHE_ROOT


def _gotune_dirs(base: str) -> list[str]:
    """The root-owned gotune directories above a user's gotune base (``<mount>/gotune`` ...)."""
    if base.startswith(ROOT_FS_BASE + "/"):
        return [GOTUNE_VAR_CACHE, ROOT_FS_BASE]
    return [base.rsplit("/", 1)[0]]


def _home_parents(path: str, home: str) -> list[str]:
    """Directories between ``home`` and ``path``'s parent, parents first."""
    out = []
    parent = path.rsplit("/", 1)[0]
    while inside(parent, home):
        out.append(parent)
        parent = parent.rsplit("/", 1)[0]
    return list(reversed(out))


def _parent_dirs(path: str, home: str, user: str, gid: int) -> None:
    """The parent directory of a cache path: gotune's own directory, or dirs in home."""
    base = gotune_base_of(path, user)
    if base:
        caches.root_dirs(name="gotune cache directories", paths=_gotune_dirs(base))
        caches.user_dirs(
            name=f"{user}'s gotune directory", user=user, gid=gid, paths=[base], record=True
        )
    elif inside(path, home):
        caches.user_dirs(
            name=f"{user}'s cache parent directories", user=user, gid=gid, mode=0o755,
            paths=_home_parents(path, home),
        )  # fmt: skip


def _moved(d: MovedCache, home: str, gid: int) -> None:
    user = str(d.user)
    if d.value is None or d.current is None:
        return
    _parent_dirs(d.value, home, user, gid)
    caches.move(
        name=f"move {user}'s {d.key} to {d.value}", user=user, key=d.key, src=d.current,
        dst=d.value,
    )  # fmt: skip


def _tmpfs(hp: HostPlan, d: TmpfsCache, home: str, account: dict[str, Any]) -> None:
    user, uid, gid = str(d.user), int(account["uid"]), int(account["gid"])
    systemd = hp.facts.platform.systemd
    caches.root_dirs(
        name="gotune tmpfs mount points", paths=[GOTUNE_VAR_CACHE, TMPFS_ROOT, d.mountpoint]
    )
    caches.tmpfs(
        name=f"{user}'s GOCACHE tmpfs ({d.size_bytes >> 20} MiB) at {d.mountpoint}", user=user,
        uid=uid, gid=gid, mountpoint=d.mountpoint, size_bytes=d.size_bytes, systemd=systemd,
    )  # fmt: skip
    caches.user_dirs(
        name=f"{user}'s GOCACHE and GOTMPDIR on the tmpfs", user=user, gid=gid,
        paths=[str(d.value), f"{d.mountpoint}/tmp"],
    )  # fmt: skip
    snap_dir = d.snapshot.rsplit("/", 1)[0]
    if gotune_base_of(snap_dir, user):
        _parent_dirs(d.snapshot, home, user, gid)
    else:  # in home: ~/.cache/gotune, its parents left as the user would make them
        _parent_dirs(snap_dir, home, user, gid)
        caches.user_dirs(
            name=f"{user}'s GOCACHE snapshot directory", user=user, gid=gid, paths=[snap_dir],
            record=True,
        )  # fmt: skip
    caches.snapshots(
        name=f"{user}'s GOCACHE snapshots", user=user, cache=str(d.value), snapshot=d.snapshot,
        size_bytes=d.size_bytes, minutes=hp.settings.snapshot_minutes, systemd=systemd,
        mountpoint=d.mountpoint,
    )  # fmt: skip


@deploy("gotune caches")
def deploy_caches(hp: HostPlan) -> None:
    """Put each developer user's caches where the plan says, and their keys into GOENV."""
    if not hp.plan.caches:
        host.noop("no developer user: no caches to place")
        return
    accounts: dict[str, Any] = host.get_fact(Users)
    for user, planned in hp.plan.caches.items():
        account = accounts[user]
        home = hp.facts.users[user].user.home or str(account["home"])
        gid = int(account["gid"])
        for d in planned.decisions():
            if isinstance(d, MovedCache):
                _moved(d, home, gid)
            elif isinstance(d, TmpfsCache):
                _tmpfs(hp, d, home, account)
            elif d.change and d.value and d.key == "GOCACHE":
                _parent_dirs(d.value, home, user, gid)
        # At once, not with the rest of GOENV: a later failure must not leave go
        # pointing at a moved cache's old place (deploys/goenv.py).
        user_goenv(hp, user, account, CACHE_KEYS)
