"""The undo record on a host, and the recorded changes it makes possible.

Before gotune changes anything on a host it records what was there, once, in
``/var/lib/gotune/undo/`` (root-only):

- ``files/<hex path>``: a copy of the file or symlink as it was (``cp -a``), or
  ``files/<hex path>.absent`` when there was none. A directory that gotune had to
  replace (an old ``/usr/local/go``) is moved there whole.
- ``created/<hex path>``: a directory gotune created and undo removes (a Go root).
- ``moves/<user>.<KEY>``: ``<hex from> <hex to>``: a cache gotune moved.
- ``mounts/<hex path>``: a tmpfs gotune mounted.
- ``units/<name>``: a systemd unit gotune enabled.
- ``packages/<name>``: a package gotune installed.
- ``users/<name>``: a system user gotune created (a service's account).
- ``owners/<hex path>``: the developer user who reads and writes that file (their
  GOENV): its ``files/`` record is what they read (``READ_OWNED``), and undo puts it
  back as them. ``stage/`` holds the new content on its way to them.

Paths are hex-encoded in names so no path ever needs quoting in a file name.
Only the first record of a path is kept: after two applies, undo restores what
was there before the first. ``gotune undo`` replays the records
(``operations/undo.py``) and removes the directory.

Files are written beside their target and renamed into place, so an interrupted
apply leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import io
import shlex
from collections.abc import Generator, Mapping, Sequence
from typing import Any, NamedTuple

from pyinfra import host
from pyinfra.api import FileUploadCommand, OperationError, StringCommand, operation
from pyinfra.facts.files import Directory, File, FileContents, Link, Sha256File
from pyinfra.facts.server import Users, Which
from pyinfra.operations import apk, apt, dnf, pacman, yum, zypper

from gotune.agent.paths import UNDO_DIR

q = shlex.quote


def hexname(path: str) -> str:
    return path.encode().hex()


def unhex(name: str) -> str:
    return bytes.fromhex(name).decode(errors="replace")


def _undo_dir_cmd(kind: str) -> str:
    """Shell that makes ``<UNDO_DIR>/<kind>``, both root-only."""
    return f"mkdir -p {UNDO_DIR}/{kind} && chmod 0700 {UNDO_DIR} {UNDO_DIR}/{kind}"


def record_path_cmd(path: str, move_dirs: bool = False) -> str:
    """Shell that records ``path`` as it is now, unless it was recorded before.

    + move_dirs: a directory at ``path`` is moved into the record (it is about to be
      replaced by a symlink); otherwise directories are not recorded
    """
    rec = f"{UNDO_DIR}/files/{hexname(path)}"
    keep = f"mv {q(path)} {q(rec)}" if move_dirs else "true"
    return (
        f"if ! test -e {q(rec)} && ! test -L {q(rec)} && ! test -e {q(rec)}.absent; then "
        f"{_undo_dir_cmd('files')} && "
        f"if test -L {q(path)} || test -f {q(path)}; then cp -a {q(path)} {q(rec)}; "
        f"elif test -d {q(path)}; then {keep}; "
        f"else : > {q(rec)}.absent; fi; fi"
    )


def as_user_cmd(user: str, script: str) -> str:
    """Shell that runs ``script`` (sh) as ``user``, with the caller's stdin: runuser where
    there is one (util-linux), else su. A file the user controls is read and written as
    the user, so a link they place there leads only where they could go themselves."""
    s, u = q(script), q(user)
    return (f"if command -v runuser >/dev/null 2>&1; then runuser -u {u} -- /bin/sh -c {s}; "
            f"else su -s /bin/sh -c {s} {u}; fi")  # fmt: skip


# An owned file's record, as its owner read it: "L" and the link's target, "F <mode>" and
# the content, on stdin of the restore (operations/undo.py), which writes it back as them.
READ_OWNED = ('if test -L "$p"; then echo L; readlink -n -- "$p"; '
              'elif test -f "$p"; then echo "F $(stat -c %a -- "$p")"; cat -- "$p"; fi')


def record_owned_cmd(path: str, user: str) -> str:
    """Shell that records ``path``, a file of ``user``'s, as ``user`` reads it, unless it
    was recorded before; ``owners/<hex path>`` names them for undo."""
    rec = f"{UNDO_DIR}/files/{hexname(path)}"
    read = as_user_cmd(user, f"p={q(path)}; {READ_OWNED}")
    return (
        f"if ! test -e {q(rec)} && ! test -L {q(rec)} && ! test -e {q(rec)}.absent; then "
        f"{_undo_dir_cmd('files')} && {_undo_dir_cmd('owners')} && "
        f"{{ {read}; }} > {q(rec)}.new && "
        f"if test -s {q(rec)}.new; then mv -f {q(rec)}.new {q(rec)}; "
        f"else rm -f {q(rec)}.new && : > {q(rec)}.absent; fi && "
        f"printf '%s\\n' {q(user)} > {UNDO_DIR}/owners/{hexname(path)}; fi"
    )


def record_cmd(kind: str, name: str, content: str = "") -> str:
    """Shell that writes ``<UNDO_DIR>/<kind>/<name>`` once.

    + kind: created, dirs, moves, mounts, units, packages or users
    """
    rec = f"{UNDO_DIR}/{kind}/{name}"
    return (
        f"test -e {q(rec)} || {{ {_undo_dir_cmd(kind)} && "
        f"printf '%s\\n' {q(content)} > {q(rec)}; }}"
    )


def record_created_cmd(path: str) -> str:
    """Shell that records ``path`` as created by gotune when it does not exist yet."""
    return f"test -e {q(path)} || {{ {record_cmd('created', hexname(path), path)}; }}"


def make_parents_cmd(path: str, owner: str | None, stop: str = "/") -> str:
    """Shell that creates the missing parent directories of ``path``, owned by ``owner``.

    Existing directories are left as they are (never chowned).
    + stop: highest directory that may be created (the user's home for GOENV)
    """
    parents = []
    parent = path.rsplit("/", 1)[0]
    while parent and parent != stop.rstrip("/") and parent.startswith(stop.rstrip("/") + "/"):
        parents.append(parent)
        parent = parent.rsplit("/", 1)[0]
    if not parents:
        return "true"
    chown = f' && chown {q(owner)}: "$d"' if owner else ""
    dirs = " ".join(q(p) for p in reversed(parents))
    return f'for d in {dirs}; do test -d "$d" || {{ mkdir "$d"{chown}; }}; done'


def _mode(mode: int) -> str:
    return f"{mode:o}"


@operation()
def file(
    path: str,
    content: str,
    user: str = "root",
    group: str | None = None,
    mode: int = 0o644,
    parents_from: str = "/",
    as_owner: bool = False,
) -> Generator[Any, None, None]:
    """
    Make a file hold ``content``, recording what was there for undo.

    + path: the file on the host
    + content: the text it must hold
    + user: owner of the file (and of parent directories gotune creates)
    + group: its group (default: the user's primary group)
    + mode: permission bits
    + parents_from: create missing parents below this directory
    + as_owner: read, record and write the file as ``user``, not as root: it is in a
      tree the user controls (their home); ``group`` is then the one they get

    The new content is uploaded beside the file and renamed over it.

    **Example:**

    .. code:: python

        state.file(path="/etc/profile.d/gotune.sh", content="export PATH=...\n")
    """
    want = hashlib.sha256(content.encode()).hexdigest()
    info = host.get_fact(File, path=path)
    same_content = info and host.get_fact(Sha256File, path=path) == want
    owner_ok = info and info["user"] == user and (
        group is None or as_owner or info["group"] == group
    )
    mode_ok = info and str(info["mode"]) == _mode(mode)
    if same_content and owner_ok and mode_ok:
        host.noop(f"{path} is already as wanted")
        return
    tmp = f"{path}.gotune-new"
    if as_owner:
        yield from owned_file_commands(path, content, user, mode, parents_from)
        return
    owner = f"{user}:{group}" if group else f"{user}:"
    yield record_path_cmd(path)
    yield make_parents_cmd(path, user if user != "root" else None, parents_from)
    yield FileUploadCommand(io.BytesIO(content.encode()), tmp)
    yield StringCommand(
        f"chown {q(owner)} {q(tmp)} && chmod {_mode(mode)} {q(tmp)} && mv -f {q(tmp)} {q(path)}"
    )


def owned_file_commands(
    path: str, content: str, user: str, mode: int, parents_from: str
) -> Generator[Any, None, None]:
    """``file``'s commands for a file its owner writes: root only stages the content in
    its undo directory, and the user's shell takes it on stdin."""
    staged = f"{UNDO_DIR}/stage/{hexname(path)}"
    tmp = q(f"{path}.gotune-new")
    write = (f"umask 022 && {make_parents_cmd(path, None, parents_from)} && cat > {tmp} && "
             f"chmod {_mode(mode)} {tmp} && mv -Tf {tmp} {q(path)}")  # fmt: skip
    yield record_owned_cmd(path, user)
    yield _undo_dir_cmd("stage")
    yield FileUploadCommand(io.BytesIO(content.encode()), staged)
    yield StringCommand(
        f"{{ {as_user_cmd(user, write)}; }} < {q(staged)}; rc=$?; rm -f {q(staged)}; "
        "test $rc -eq 0"
    )


@operation()
def link(path: str, target: str, move_dirs: bool = False) -> Generator[Any, None, None]:
    """
    Make ``path`` a symlink to ``target``, switched atomically, recording what was there.

    + path: the symlink
    + target: what it points to (relative targets are relative to the link's directory)
    + move_dirs: a real directory at ``path`` is moved into the undo record first

    **Example:**

    .. code:: python

        state.link(path="/usr/local/go", target="go-1.22.3", move_dirs=True)
    """
    info = host.get_fact(Link, path=path)
    if info and info.get("link_target") == target:
        host.noop(f"{path} already points to {target}")
        return
    tmp = f"{path}.gotune-new"
    yield record_path_cmd(path, move_dirs=move_dirs)
    yield StringCommand(f"ln -sfn {q(target)} {q(tmp)} && mv -Tf {q(tmp)} {q(path)}")


def file_lines(path: str) -> list[str] | None:
    """The file's lines on the current host (None: no such file)."""
    lines = host.get_fact(FileContents, path=path)
    return None if lines is None else list(lines)


@operation()
def record_unit(unit: str) -> Generator[Any, None, None]:
    """
    Record a systemd unit gotune enabled, so ``gotune undo`` disables it.

    + unit: the unit name, e.g. ``gotune-mirror.service``

    **Example:**

    .. code:: python

        state.record_unit(unit="gotune-mirror.service")
    """
    if host.get_fact(File, path=f"{UNDO_DIR}/units/{unit}"):
        host.noop(f"{unit} already recorded for undo")
        return
    yield record_cmd("units", unit, unit)


@operation()
def record_user(user: str) -> Generator[Any, None, None]:
    """
    Record a system user gotune is about to create, so ``gotune undo`` removes it; a user
    that exists already is not recorded (it was there before).

    + user: the account name, e.g. ``gotune-mirror``

    **Example:**

    .. code:: python

        state.record_user(user="gotune-mirror")
    """
    if host.get_fact(File, path=f"{UNDO_DIR}/users/{user}"):
        host.noop(f"user {user} already recorded for undo")
        return
    # server.user reads the same fact: no extra round trip.
    if user in (host.get_fact(Users) or {}):
        host.noop(f"user {user} was there before gotune made it: undo leaves it")
        return
    yield record_cmd("users", user, user)


class PackageTool(NamedTuple):
    install: Any  # the pyinfra operation that installs with this tool
    installed: str  # shell that succeeds when package {} is installed
    remove: str  # shell that removes package {}


RPM_INSTALLED = "rpm -q {} >/dev/null 2>&1"
# The package tools gotune installs with. Without a distribution of its own to go by, a host's
# first one in this order installs: Debian ships zypper, dnf and pacman as ordinary packages,
# which would find no smartmontools there; dnf before yum (yum is often dnf's alias).
PACKAGE_TOOLS = {
    "apt-get": PackageTool(apt.packages,
                           "dpkg-query -W -f='${{Status}}' {} 2>/dev/null | grep -q 'ok installed'",
                           "apt-get remove -y {}"),
    "dnf": PackageTool(dnf.packages, RPM_INSTALLED, "dnf remove -y {}"),
    "yum": PackageTool(yum.packages, RPM_INSTALLED, "yum remove -y {}"),
    "zypper": PackageTool(zypper.packages, RPM_INSTALLED, "zypper --non-interactive remove {}"),
    "pacman": PackageTool(pacman.packages, "pacman -Q {} >/dev/null 2>&1",
                          "pacman -R --noconfirm {}"),
    "apk": PackageTool(apk.packages, "apk info -e {} >/dev/null 2>&1", "apk del {}"),
}  # fmt: skip
# Each distribution's own tools, by os-release id as the facts normalise it (derivatives,
# Rocky or Mint, name these in ID_LIKE).
DISTRO_TOOLS = {
    **dict.fromkeys(("debian", "ubuntu"), ("apt-get",)),
    **dict.fromkeys(("fedora", "rhel", "centos"), ("dnf", "yum")),
    **dict.fromkeys(("suse", "opensuse", "sles"), ("zypper",)),
    "arch": ("pacman",),
    "alpine": ("apk",),
}  # fmt: skip


def tool_order(distro: Sequence[str]) -> list[str]:
    """PACKAGE_TOOLS' names, the tools of the host's distribution (``distro``: its id, then
    those it is like) first."""
    own = [tool for d in distro for tool in DISTRO_TOOLS.get(d, ())]
    return list(dict.fromkeys([*own, *PACKAGE_TOOLS]))


@operation()
def package(
    names: Mapping[str, str], present: bool, distro: Sequence[str] = ()
) -> Generator[Any, None, None]:
    """
    Install a distribution package with the host's package tool and record it, once
    installed, so ``gotune undo`` removes it; nothing when it or what it provides is
    there already.

    + names: the package's name for each tool gotune knows (keys of ``PACKAGE_TOOLS``)
    + present: whether what the package provides is on the host already (a command on
      PATH): then it was there before gotune, and undo leaves it
    + distro: the host's distribution and those it is like (os-release ``ID``, then
      ``ID_LIKE``): the first of its own tools the host has installs, else the first
      tool of ``PACKAGE_TOOLS`` the host has

    **Example:**

    .. code:: python

        state.package(names={"apt-get": "smartmontools"}, present=False, distro=["debian"])
    """
    if present:
        host.noop(f"{', '.join(sorted(set(names.values())))}: already there")
        return
    known = [t for t in tool_order(distro) if t in names]
    tool = next((t for t in known if host.get_fact(Which, command=t)), None)
    if tool is None:
        raise OperationError(f"no {' or '.join(known)} on the host: cannot install "
                             f"{'/'.join(sorted(set(names.values())))}")  # fmt: skip
    install = list(PACKAGE_TOOLS[tool].install._inner(packages=[names[tool]]))
    if not install:  # in the package database already: not gotune's to remove
        host.noop(f"{names[tool]} is installed ({tool})")
        return
    yield from install
    # Recorded only once installed: a failed install leaves no record that would make
    # undo remove a package someone installs by hand later.
    yield record_cmd("packages", names[tool], f"{tool} {names[tool]}")


@operation()
def record_created(path: str, ancestors: bool = True) -> Generator[Any, None, None]:
    """
    Record a directory gotune is about to create, so ``gotune undo`` removes it.

    + path: the directory (recorded only if it does not exist yet)
    + ancestors: record its highest missing ancestor instead (``mkdir -p`` creates
      them all, and undo removes that one with everything below it)

    **Example:**

    .. code:: python

        state.record_created(path="/var/cache/gotune/mirror")
    """
    if host.get_fact(Directory, path=path) is not None:
        host.noop(f"{path} exists (recorded when gotune created it, if it did)")
        return
    top = path
    while (
        ancestors
        and top.count("/") > 1
        and host.get_fact(Directory, path=top.rsplit("/", 1)[0]) is None
    ):
        top = top.rsplit("/", 1)[0]
    if host.get_fact(File, path=f"{UNDO_DIR}/created/{hexname(top)}"):
        host.noop(f"{top} is recorded as gotune's to remove")
        return
    yield record_created_cmd(top)


@operation()
def record_shared_dir(path: str) -> Generator[Any, None, None]:
    """
    Record a directory gotune is about to create that other software may fill too,
    so ``gotune undo`` removes it, and each missing ancestor, only while it is empty.

    + path: the directory (it and its missing ancestors are recorded; existing ones never)

    **Example:**

    .. code:: python

        state.record_shared_dir(path="/var/lib/prometheus/node-exporter")
    """
    missing = []
    top = path
    while top.count("/") > 1 and host.get_fact(Directory, path=top) is None:
        missing.append(top)
        top = top.rsplit("/", 1)[0]
    if not missing:
        host.noop(f"{path} exists (recorded when gotune created it, if it did)")
        return
    for each in missing:
        yield record_cmd("dirs", hexname(each), each)


@operation()
def record_file(path: str) -> Generator[Any, None, None]:
    """
    Record a file a service will write, so ``gotune undo`` puts back what was there.

    + path: the file (its absence is recorded when it does not exist yet)

    **Example:**

    .. code:: python

        state.record_file(path="/var/lib/prometheus/node-exporter/gotune_wear.prom")
    """
    rec = f"{UNDO_DIR}/files/{hexname(path)}"
    if host.get_fact(File, path=rec) or host.get_fact(File, path=f"{rec}.absent"):
        host.noop(f"{path} already recorded for undo")
        return
    if host.get_fact(File, path=path):
        host.noop(f"{path} exists and was not recorded before: undo leaves it")
        return
    yield record_path_cmd(path)
