"""Put back what gotune changed on a host, from its undo records.

Paired with ``operations/state.py`` (the records). The order undoes the
dependencies: units are stopped before their files go, tmpfs mounts are
unmounted before fstab is restored, caches are moved back before the
directories gotune created are removed (those it made for others to fill too,
such as node_exporter's textfile directory, only while empty), and the system
users gotune created go last, once nothing runs as them. Caches are moved, never deleted.
"""

from __future__ import annotations

import shlex
from collections.abc import Generator
from typing import Any

from pyinfra import host
from pyinfra.api import StringCommand, operation
from pyinfra.facts.server import Which

from gotune.agent.paths import UNDO_DIR, WSL_CONF
from gotune.facts.model import UndoRecord
from gotune.operations.caches import move_cmd
from gotune.operations.state import PACKAGE_TOOLS, as_user_cmd, hexname, make_parents_cmd
from gotune.operations.wsl import marker_cmd

q = shlex.quote


# Writes back an owned file's record (state.READ_OWNED's format) from stdin, as its owner.
WRITE_OWNED = ('IFS=" " read -r kind mode || exit 1; n="$p.gotune-new"; case $kind in '
               'L) t=$(cat) && ln -sfn -- "$t" "$n" && mv -Tf "$n" "$p";; '
               'F) cat > "$n" && chmod "$mode" "$n" && mv -Tf "$n" "$p";; '
               '*) exit 1;; esac')  # fmt: skip


def restore_owned_cmd(path: str, existed: bool, user: str) -> str:
    """Shell that puts back a file of ``user``'s (their GOENV) as that user: through a link
    they have placed since, root would write or delete where they cannot. A user who is
    gone by now has no file to put back."""
    rec = f"{UNDO_DIR}/files/{hexname(path)}"
    script = f"p={q(path)}; " + (WRITE_OWNED if existed else 'rm -f -- "$p" "$p.gotune-new"')
    # Refused (a link they placed leads where they cannot write): said, and undo goes on.
    refused = f"gotune undo: {user} could not put back {path}; it is left as it is"
    return (f"if id -u {q(user)} >/dev/null 2>&1; then "
            f"{{ {as_user_cmd(user, script)}; }} < {q(rec) if existed else '/dev/null'} || "
            f"echo {q(refused)} >&2; fi")


def restore_file_cmd(path: str, existed: bool) -> str:
    rec = f"{UNDO_DIR}/files/{hexname(path)}"
    if not existed:
        return f"rm -f {q(path)} {q(path)}.gotune-new"
    # A file on WSL2's /mnt/c (.wslconfig) may refuse cp -a's chown: its bytes are what count.
    new = f"{q(path)}.gotune-new"
    return (
        f"if test -d {q(rec)} && ! test -L {q(rec)}; then "
        f"rm -f {q(path)} && mv -T {q(rec)} {q(path)}; "
        f"else rm -rf {new} && {{ cp -a {q(rec)} {new} 2>/dev/null || cp {q(rec)} {new}; }} && "
        f"mv -Tf {new} {q(path)}; fi"
    )


def remove_user_cmd(user: str) -> str:
    """Shell that removes a service's system user once its last process is gone (a
    supervised service stops within seconds of its script going); still in use after
    10 s, it is left with a message, and undo goes on."""
    u = q(user)
    return (
        f"if id -u {u} >/dev/null 2>&1; then i=0; until userdel {u} 2>/dev/null; do "
        f"i=$((i + 1)); if [ $i -ge 20 ]; then echo \"gotune undo: user {user} is still in "
        f"use; remove it later with: userdel {user}\" >&2; break; fi; sleep 0.5; done; fi"
    )


@operation()
def restore(record: UndoRecord) -> Generator[Any, None, None]:
    """
    Restore everything gotune recorded on this host, then forget the records.

    + record: the host's undo records (``facts.gotune.undo`` of its facts)

    **Example:**

    .. code:: python

        undo.restore(record=host.get_fact(Machine).gotune.undo)
    """
    rec = record
    if rec.empty():
        host.noop("nothing recorded: gotune changed nothing here")
        return
    systemd = bool(host.get_fact(Which, command="systemctl"))
    if systemd:
        for unit in rec.units:
            yield f"systemctl disable --now {q(unit)} || true"
            if unit.endswith(".timer"):  # Persistent= keeps its last run here
                yield f"rm -f /var/lib/systemd/timers/stamp-{q(unit)}"
    for mp in rec.mounts:
        yield (
            f"if awk -v p={q(mp)} '$2 == p {{ found = 1 }} END {{ exit !found }}' "
            "/proc/self/mounts; "
            f"then umount {q(mp)}; fi"
        )
    for m in rec.moves:
        yield make_parents_cmd(m.src, m.user)
        yield StringCommand(move_cmd(m.dst, m.src, m.user, m.key))
    for path, existed in rec.files.items():
        owner = rec.owners.get(path)
        yield restore_owned_cmd(path, existed, owner) if owner else restore_file_cmd(path, existed)
        if path == WSL_CONF or path.endswith("/.wslconfig"):
            yield marker_cmd(path)  # WSL reads the restored file only after a restart
    for path in rec.created:
        yield f"if test -e {q(path)}; then chmod -R u+w {q(path)} && rm -rf {q(path)}; fi"
    # Deepest first, so a parent gotune made is empty once its child is gone.
    for path in sorted(rec.dirs, key=lambda p: p.count("/"), reverse=True):
        yield f"if test -d {q(path)}; then rmdir --ignore-fail-on-non-empty {q(path)}; fi"
    for p in rec.packages:
        if p.tool in PACKAGE_TOOLS:  # removed only while installed (someone may have already)
            tool, name = PACKAGE_TOOLS[p.tool], q(p.package)
            yield f"if {tool.installed.format(name)}; then {tool.remove.format(name)}; fi"
    for user in rec.users:
        yield remove_user_cmd(user)
    if systemd and (rec.units or any(p.startswith("/etc/systemd/") for p in rec.files)):
        yield "systemctl daemon-reload"
    yield f"rm -rf {UNDO_DIR} && rmdir --ignore-fail-on-non-empty {UNDO_DIR.rsplit('/', 1)[0]}"
