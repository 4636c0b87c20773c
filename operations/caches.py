"""Go caches on the host: moving them, the tmpfs GOCACHE, its snapshots and trim.

Paired with ``gotune/plan/caches.py`` (where caches go) and ``operations/undo.py``
(putting them back). Module caches are moved, never rebuilt: a rename on the
same filesystem, otherwise copy, compare, then delete (Go makes module files
read-only, so the old tree is made writable before it is removed).
"""

from __future__ import annotations

import shlex
from collections.abc import Generator
from typing import Any

from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.facts.files import Directory, File
from pyinfra.facts.server import Mounts
from pyinfra.facts.systemd import SystemdEnabled

from gotune.operations.render import render
from gotune.operations.state import UNDO_DIR, file_lines, hexname, record_cmd
from gotune.operations.state import file as state_file

q = shlex.quote

FSTAB = "/etc/fstab"
HELPER = "/usr/local/sbin/gotune-gocache"
SYSTEMD_DIR = "/etc/systemd/system"
CRON_DIR = "/etc/cron.d"
# Trim above 80% of the cap, down to 60%: a build between two trims has a fifth
# of the cap (at least 200 MiB on the smallest 1 GiB tmpfs) to write into.
TRIM_ABOVE_PERCENT = 80
TRIM_TO_PERCENT = 60
# Without systemd, cron trims this often (minutes): a fast machine writes well
# under a fifth of a GiB-sized cache in five minutes of builds.
TRIM_MINUTES = 5
MIB = 1024**2


def systemd_escape_path(path: str) -> str:
    """``systemd-escape --path``: the unit name stem for a mount point."""
    stripped = path.strip("/")
    if not stripped:
        return "-"
    out = []
    for i, ch in enumerate(stripped):
        if ch == "/":
            out.append("-")
        elif ch.isascii() and (ch.isalnum() or ch in "_:" or (ch == "." and i > 0)):
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return "".join(out)


def mount_unit(mountpoint: str) -> str:
    return f"{systemd_escape_path(mountpoint)}.mount"


def tmpfs_options(size_bytes: int, uid: int, gid: int) -> str:
    return f"rw,nosuid,nodev,size={size_bytes // MIB}m,mode=0700,uid={uid},gid={gid}"


def fstab_line(mountpoint: str, options: str) -> str:
    return f"tmpfs {mountpoint} tmpfs {options} 0 0"


# What a Go cache holds, by key, as shell tests on "$src": the module cache's cache/
# (downloads, VCS checkouts) or a module@version directory; the build cache's README (Go
# writes it first) or trim.txt (Go's trim, and the build cache helper's). An empty
# directory is a cache too.
GO_CACHE_MARKS = {
    "GOMODCACHE": ('test -d "$src/cache"',
                   'test -n "$(find "$src" -maxdepth 3 -name "*@v*" -print | head -n 1)"'),
    "GOCACHE": ('test -e "$src/README"', 'test -e "$src/trim.txt"'),
}
GO_CACHE_LOOKS = {"GOMODCACHE": "cache/ or a module@version directory",
                  "GOCACHE": "README or trim.txt"}


def move_cmd(src: str, dst: str, user: str, key: str) -> str:
    """Shell that moves ``user``'s cache tree ``src`` (``key``: GOMODCACHE or GOCACHE) to
    ``dst`` losing nothing, or stops untouched.

    The path came from the user's ``go env``, and root runs this: a tree that is not the
    user's, or not a Go cache (``GOMODCACHE=/etc``, or a whole home), is never moved.
    """
    what = f"{user}'s {key}"
    marked = " || ".join(GO_CACHE_MARKS.get(key, ())) or "true"
    return f"""set -e
src={q(src)}; dst={q(dst)}
if ! test -d "$src" || test -L "$src"; then exit 0; fi
if [ "$(stat -c %U "$src")" != {q(user)} ]; then
  echo "gotune: {what}: $src is not owned by {user}; nothing moved" >&2; exit 1; fi
if test -n "$(ls -A "$src")" && ! {{ {marked}; }}; then
  echo "gotune: {what}: $src does not look like a Go cache (no {GO_CACHE_LOOKS.get(key)});" \
    "nothing moved" >&2; exit 1; fi
if test -d "$dst" && test -n "$(ls -A "$dst")"; then
  echo "gotune: {what}: both $src and $dst hold files; nothing moved" >&2; exit 1; fi
parent=$(dirname "$dst")
test -d "$parent"
if [ "$(stat -c %d "$src")" = "$(stat -c %d "$parent")" ]; then
  if test -d "$dst"; then rmdir "$dst"; fi
  mv -T "$src" "$dst"; exit 0; fi
need=$(du -sk "$src" | cut -f1)
have=$(df -Pk "$parent" | awk 'NR==2 {{print $4}}')
if [ "$need" -ge "$have" ]; then
  echo "gotune: not enough room to move {what}: $src needs $need KiB," \
    "$parent has $have KiB free; nothing moved" >&2
  exit 1; fi
part="$dst.gotune-partial"
if test -e "$part"; then chmod -R u+w "$part"; rm -rf "$part"; fi
cp -a "$src" "$part"
if ! diff -r "$src" "$part" >/dev/null; then
  chmod -R u+w "$part"; rm -rf "$part"
  echo "gotune: the copy of {what} differs from $src; nothing moved" >&2; exit 1; fi
if test -d "$dst"; then rmdir "$dst"; fi
mv -T "$part" "$dst"
chmod -R u+w "$src"
rm -rf "$src"
"""


@operation()
def move(user: str, key: str, src: str, dst: str) -> Generator[Any, None, None]:
    """
    Move a user's existing cache from ``src`` to ``dst``, losing nothing.

    + user: the cache's owner
    + key: ``GOMODCACHE`` or ``GOCACHE`` (for the undo record and messages)
    + src: where the cache is today
    + dst: where it goes (its parent must exist)

    Not enough room on the destination stops before anything moves.

    **Example:**

    .. code:: python

        caches.move(user="alice", key="GOMODCACHE", src="/home/alice/go/pkg/mod",
                    dst="/data/gotune/alice/mod")
    """
    record = f"{UNDO_DIR}/moves/{user}.{key}"
    if src == dst:
        host.noop(f"{key} is already at {dst}")
        return
    if not host.get_fact(Directory, path=src):
        # Nothing to move, but undo must still bring back what collects at dst.
        if host.get_fact(File, path=record):
            host.noop(f"no {key} at {src} to move")
        else:
            yield record_cmd("moves", f"{user}.{key}", f"{hexname(src)} {hexname(dst)}")
        return
    yield record_cmd("moves", f"{user}.{key}", f"{hexname(src)} {hexname(dst)}")
    yield StringCommand(move_cmd(src, dst, user, key))


@operation()
def user_dirs(
    paths: list[str], user: str, gid: int, mode: int = 0o700, record: bool = False
) -> Generator[Any, None, None]:
    """
    Create directories owned by a developer user (existing ones are left as they are).

    + paths: directories, parents first
    + user: their owner
    + gid: their group id
    + mode: permission bits of the ones created
    + record: undo removes the ones created (only for gotune's own directories)

    **Example:**

    .. code:: python

        caches.user_dirs(paths=["/data/gotune/alice"], user="alice", gid=1000)
    """
    missing = [p for p in paths if not host.get_fact(Directory, path=p)]
    if not missing:
        host.noop("directories exist")
        return
    if record:
        yield from (record_cmd("created", hexname(p), p) for p in missing)
    yield StringCommand(
        f"install -d -m {mode:o} -o {q(user)} -g {gid} " + " ".join(q(p) for p in missing)
    )


@operation()
def root_dirs(paths: list[str]) -> Generator[Any, None, None]:
    """
    Create root-owned 0755 directories gotune keeps its own things in (undo removes them).

    + paths: directories, parents first

    **Example:**

    .. code:: python

        caches.root_dirs(paths=["/var/cache/gotune/tmpfs"])
    """
    missing = [p for p in paths if not host.get_fact(Directory, path=p)]
    if not missing:
        host.noop("directories exist")
        return
    yield from (record_cmd("created", hexname(p), p) for p in missing)
    yield StringCommand("install -d -m 755 " + " ".join(q(p) for p in missing))


@operation()
def tmpfs(
    user: str, uid: int, gid: int, mountpoint: str, size_bytes: int, systemd: bool
) -> Generator[Any, None, None]:
    """
    Mount a size-capped tmpfs owned by ``user`` (mode 0700), now and at every boot.

    + user: the owner
    + uid: the owner's uid (a mount option)
    + gid: the owner's gid
    + mountpoint: where it is mounted
    + size_bytes: its cap
    + systemd: a systemd mount unit when True, an /etc/fstab line otherwise

    **Example:**

    .. code:: python

        caches.tmpfs(user="alice", uid=1000, gid=1000, mountpoint="/var/cache/gotune/tmpfs/alice",
                     size_bytes=4 << 30, systemd=False)
    """
    options = tmpfs_options(size_bytes, uid, gid)
    unit_written = False
    if systemd:
        unit = mount_unit(mountpoint)
        for command in state_file._inner(
            path=f"{SYSTEMD_DIR}/{unit}",
            content=render(
                "caches-tmpfs.mount.j2", user=user, mountpoint=mountpoint, options=options
            ),
        ):
            unit_written = True
            yield command
    else:
        line = fstab_line(mountpoint, options)
        lines = file_lines(FSTAB) or []
        ours = [ln for ln in lines if _fstab_target(ln) == mountpoint]
        if ours != [line]:
            kept = [ln for ln in lines if _fstab_target(ln) != mountpoint]
            yield from state_file._inner(path=FSTAB, content="\n".join([*kept, line]) + "\n")
    mounted = host.get_fact(Mounts).get(mountpoint)
    if mounted and mounted["type"] == "tmpfs":
        have = _size_option(mounted["options"])
        if have == size_bytes // 1024:
            host.noop(f"tmpfs at {mountpoint} is mounted")
        else:
            yield f"mount -o remount,size={size_bytes // MIB}m {q(mountpoint)}"
    else:
        yield record_cmd("mounts", hexname(mountpoint), mountpoint)
        yield f"mount -t tmpfs -o {q(options)} tmpfs {q(mountpoint)}"
    if systemd:
        unit = mount_unit(mountpoint)
        # Enabled and unchanged: nothing to do (a second apply changes nothing).
        enabled = host.get_fact(SystemdEnabled, services=[unit]).get(unit)
        if enabled and not unit_written:
            host.noop(f"{unit} is enabled")
        else:
            yield record_cmd("units", unit, unit)
            yield f"systemctl daemon-reload && systemctl enable {q(unit)}"


def _fstab_target(line: str) -> str | None:
    fields = line.split()
    if len(fields) < 2 or fields[0].startswith("#"):
        return None
    return fields[1]


def _size_option(options: list[str]) -> int | None:
    """The ``size=NNNk`` option of a mounted tmpfs, in KiB."""
    for opt in options:
        if opt.startswith("size=") and opt.endswith("k") and opt[5:-1].isdigit():
            return int(opt[5:-1])
    return None


def _schedule(minutes: int) -> str:
    return f"*/{minutes} * * * *" if minutes < 60 else f"0 */{max(minutes // 60, 1)} * * *"


@operation()
def snapshots(
    user: str,
    cache: str,
    snapshot: str,
    size_bytes: int,
    minutes: int,
    systemd: bool,
    mountpoint: str,
) -> Generator[Any, None, None]:
    """
    Restore a tmpfs GOCACHE at boot, save it at shutdown and periodically, trim it under its cap.

    + user: the cache's owner
    + cache: the GOCACHE directory on the tmpfs
    + snapshot: the tar file on disk it is saved to
    + size_bytes: the tmpfs cap (trim keeps the cache below it)
    + minutes: how often it is saved
    + systemd: units and a timer when True; a cron file otherwise (no shutdown hook)
    + mountpoint: the tmpfs mount point (the units require its mount unit)

    **Example:**

    .. code:: python

        caches.snapshots(user="alice", cache="/var/cache/gotune/tmpfs/alice/go-build",
                         snapshot="/home/alice/.cache/gotune/go-build.tar", size_bytes=4 << 30,
                         minutes=30, systemd=True, mountpoint="/var/cache/gotune/tmpfs/alice")
    """
    yield from state_file._inner(
        path=HELPER,
        mode=0o755,
        content=render(
            "caches-helper.sh.j2", trim_above=TRIM_ABOVE_PERCENT, trim_to=TRIM_TO_PERCENT
        ),
    )
    args = " ".join(q(a) for a in (user, cache, snapshot, str(size_bytes // 1024)))
    values = {
        "user": user,
        "command": HELPER,
        "args": args,
        "minutes": minutes,
        "mount_unit": mount_unit(mountpoint),
    }
    if not systemd:
        yield from state_file._inner(
            path=f"{CRON_DIR}/gotune-gocache-{user}",
            content=render(
                "caches-snapshot.cron.j2",
                save_schedule=_schedule(minutes),
                trim_schedule=_schedule(TRIM_MINUTES),
                **values,
            ),
        )
        return
    units = {
        f"gotune-gocache-{user}.service": render("caches-snapshot.service.j2", **values),
        f"gotune-gocache-save-{user}.service": render("caches-save.service.j2", **values),
        f"gotune-gocache-save-{user}.timer": render("caches-save.timer.j2", **values),
    }
    written = False
    for name, content in units.items():
        for command in state_file._inner(path=f"{SYSTEMD_DIR}/{name}", content=content):
            written = True
            yield command
    reloaded = False
    for name in (f"gotune-gocache-{user}.service", f"gotune-gocache-save-{user}.timer"):
        if host.get_fact(SystemdEnabled, services=[name]).get(name):
            host.noop(f"{name} is enabled")
            continue
        yield record_cmd("units", name, name)
        yield f"systemctl daemon-reload && systemctl enable --now {q(name)}"
        reloaded = True
    if written and not reloaded:
        # Units rewritten while enabled (an earlier gotune's): systemd must read them again,
        # or the shutdown save runs as the old unit says.
        yield "systemctl daemon-reload"
