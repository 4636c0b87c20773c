"""How a sandbox host's namespace is assembled: the start script and sshd's config.

The start script runs in a fresh mount and UTS namespace (``unshare -m -u``,
private propagation). It mounts the host's root (an overlay over ``/``), a fresh
/proc, /sys, /dev, tmpfs /run, /tmp and /dev/shm, lays a recorded machine's tree
over /sys and /proc when the host has a profile, sets the hostname, and execs
``chroot ROOT sshd -D -e``. Nothing it mounts is visible outside the namespace.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path

SSHD = "/usr/sbin/sshd"
# The directory inside every host that holds its sshd config, host key and authorized key.
SSH_DIR_INSIDE = "/etc/gotune-sandbox"
# /proc files a recorded tree may hold that facts read; never mounts or self/.
PROC_FILES = ("cpuinfo", "meminfo", "version", "cmdline")
# Directories of /sys whose children are whole subsystems: a child the recorded
# tree has replaces the real one entirely (a merge would mix two machines' CPUs).
SYS_UNIT_PARENTS = (
    "class",
    "bus",
    "firmware",
    "kernel/mm",
    "devices",
    "devices/system",
    "devices/virtual",
)
# Children of /sys itself that are replaced as a whole when the tree has them.
SYS_UNIT_DIRS = ("block",)


def sys_submounts() -> list[str]:
    """Top-level mounts below /sys (cgroup ...), which an overlay of /sys would hide."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        if point.startswith("/sys/"):
            points.append(point)
    top: list[str] = []
    for point in sorted(set(points)):
        if not any(point.startswith(parent + "/") for parent in top):
            top.append(point)
    return top


def profile_units(tree: Path) -> list[str]:
    """The /sys subsystem dirs (relative to /sys) a recorded tree replaces wholesale."""
    sys_dir = tree / "sys"
    units = [name for name in SYS_UNIT_DIRS if real_dir(sys_dir / name)]
    for parent in SYS_UNIT_PARENTS:
        base = sys_dir / parent
        if not real_dir(base):
            continue
        for child in sorted(base.iterdir()):
            rel = f"{parent}/{child.name}"
            if rel in SYS_UNIT_PARENTS or not real_dir(child):
                continue
            units.append(rel)
    return units


def real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


# Where the test Go toolchain appears inside every host (read-only): outside any
# home, so every user can run it wherever the checkout lives (/root is 0700).
GOROOT_INSIDE = "/opt/gotune-sandbox/go"
# Mounted fresh in every host: whatever the machine had there is hidden.
FRESH_TMPFS = (Path("/tmp"), Path("/run"), Path("/dev/shm"))
REPO = Path(__file__).resolve().parent.parent


def start_script(
    host_dir: Path,
    hostname: str,
    tree: Path | None,
    goroot: Path | None = None,
    first: Sequence[str] = (),
    last: Sequence[str] = (),
) -> str:
    """The shell script run inside the new namespace: mounts, hostname, exec sshd.

    ``host_dir`` holds ``upper``, ``work`` and ``root`` (the mount point). Profile
    mounts that fail are reported and skipped (never fatal: sshd must start); the
    ones that worked are listed, one per line, in ``host_dir/overlaid``.

    + goroot: the test Go toolchain, mounted read-only at GOROOT_INSIDE
    + first: lines run before anything else (joining the host's cgroups)
    + last: lines run after the host's own mounts (its slow storage)
    """
    q = shlex.quote
    root = str(host_dir / "root")
    listed = q(str(host_dir / "overlaid"))
    lines = [
        "set -eu",
        *first,
        f"mount -t overlay overlay -o lowerdir=/,upperdir={q(str(host_dir / 'upper'))},"
        f"workdir={q(str(host_dir / 'work'))} {q(root)}",
        f"mount -t proc proc {q(root + '/proc')}",
    ]

    def overlay(source: Path, inside: str) -> str:
        return (
            f"mount --bind {q(str(source))} {q(root + inside)} && echo {q(inside)} >> {listed}"
            f" || echo {q('sandbox: could not overlay ' + inside)} >&2"
        )

    if tree is not None and real_dir(tree / "sys"):
        # The recorded /sys over the real one (read-only union): the tree's files win
        # and what it lacks (cgroup dirs, devices it did not record) stays visible.
        lines.append(
            f"if mount -t overlay overlay -o lowerdir={q(str(tree / 'sys'))}:/sys "
            f"{q(root + '/sys')}; then echo /sys >> {listed};"
            f" else mount --rbind /sys {q(root + '/sys')}; fi"
        )
        lines += [
            f"mountpoint -q {q(root + point)} || mount --rbind {q(point)} {q(root + point)}"
            f" || echo {q('sandbox: could not mount ' + point)} >&2"
            for point in sys_submounts()
        ]
        lines += [overlay(tree / "sys" / unit, f"/sys/{unit}") for unit in profile_units(tree)]
    else:
        lines.append(f"mount --rbind /sys {q(root + '/sys')}")
    if tree is not None:
        lines += [
            overlay(tree / "proc" / name, f"/proc/{name}")
            for name in PROC_FILES
            if (tree / "proc" / name).is_file()
        ]
    lines += [
        f"mount --rbind /dev {q(root + '/dev')}",
        f"mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs {q(root + '/dev/shm')}",
        f"mount -t tmpfs -o mode=755,nosuid,nodev tmpfs {q(root + '/run')}",
        f"mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs {q(root + '/tmp')}",
        # sshd's privilege separation directory.
        f"mkdir -p {q(root + '/run/sshd')}",
    ]
    # A checkout under /tmp (CI may clone there) would vanish behind the tmpfs: lay
    # it back as its own overlay, so hosts see it and still cannot change it.
    if any(REPO.is_relative_to(hidden) for hidden in FRESH_TMPFS):
        repo_upper, repo_work = host_dir / "repo-upper", host_dir / "repo-work"
        lines += [
            f"mkdir -p {q(str(repo_upper))} {q(str(repo_work))} {q(root + str(REPO))}",
            f"mount -t overlay overlay -o lowerdir={q(str(REPO))},upperdir={q(str(repo_upper))},"
            f"workdir={q(str(repo_work))} {q(root + str(REPO))}",
        ]
    if tree is not None and real_dir(tree / "run" / "udev"):
        lines += [f"mkdir -p {q(root + '/run/udev')}", overlay(tree / "run" / "udev", "/run/udev")]
    if goroot is not None:
        inside = q(root + GOROOT_INSIDE)
        lines += [
            f"mkdir -p {inside}",
            f"mount --bind {q(str(goroot))} {inside}",
            f"mount -o remount,bind,ro {inside}",
        ]
    lines += [*last]
    lines += [
        f"hostname {q(hostname)}",
        f"exec chroot {q(root)} {SSHD} -D -e -f {SSH_DIR_INSIDE}/sshd_config",
    ]
    return "\n".join(lines) + "\n"


def sshd_config(address: str, port: int, extra: Sequence[str] = ()) -> str:
    """sshd's config for a host: its own address, key-only logins, no PAM.

    + extra: more lines (a WSL2 host's ``SetEnv``)
    """
    return "\n".join(
        [
            f"ListenAddress {address}",
            f"Port {port}",
            f"HostKey {SSH_DIR_INSIDE}/ssh_host_ed25519_key",
            "PidFile none",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            # The throwaway key logs in as root and as every user add_user() makes.
            f"AuthorizedKeysFile .ssh/authorized_keys {SSH_DIR_INSIDE}/authorized_keys",
            # No PAM: no logind or loginuid in a namespace; add_user() unlocks the account.
            "UsePAM no",
            "UseDNS no",
            "AcceptEnv LANG LC_*",
            "Subsystem sftp internal-sftp",
            *extra,
            "",
        ]
    )
