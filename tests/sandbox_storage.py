"""Slow storage for sandbox hosts: a 9p-like FUSE mount and a throttled "HDD".

- ``Slow9p(path="/mnt/c", latency_ms=0.5)``: ``tests/slowfs.py`` passes a
  directory of the host's own through FUSE with a fixed delay on every metadata
  operation and no attribute cache, as WSL2's /mnt/c does over 9p. This kernel
  has no 9p, so the mount shows as ``fuse.9p`` (source ``C:\\``) — a network
  filesystem to gotune's facts, like the real ``9p``.
- ``Hdd(path="/home", read_iops=120)``: an ext4 image on a loop device (direct
  I/O, so the host's page cache does not sit below it) whose reads and writes the
  host's blkio cgroup limits to a spinning disk's IOPS. The host sees it as a
  SATA disk ``sdX`` with ``queue/rotational`` 1 (a loop device would be left out
  of the facts as a pseudo disk): a small /sys/class/block of its own lists it
  instead of the loop device. Buffered writes are not throttled (cgroup v1 does
  not charge writeback) and the page cache hides reads, so what a test measures
  is a cold cache: ``SandboxHost.cold_caches()`` unmounts and remounts it.

Both live only in the host's mount namespaces; the FUSE daemon runs in the
host's cgroup and dies with it; the loop device is detached at teardown.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import string
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.sandbox_cgroups import hierarchies
from tests.slowfs import WSL_SOURCE

SLOWFS = Path(__file__).resolve().with_name("slowfs.py")
# A 7200 rpm disk does 75-150 random IOPS; 120 is a laptop/desktop HDD.
HDD_IOPS = 120
# Sparse: ext4 writes ~130 MiB of metadata to a 16 GiB image; room for any plan's free-space rule.
HDD_SIZE_GIB = 16
# WSL2's /mnt/c costs 0.1-1 ms per metadata round trip; 0.5 ms is in the middle.
SLOW9P_LATENCY_MS = 0.5
# The FUSE daemon mounts within ~0.3 s; 10 s only catches one that will never mount.
MOUNT_TIMEOUT_S = 10
SAFE_PATH = re.compile(r"^/[a-z0-9][a-z0-9/_-]*$")
HDD_MODEL = "gotune sandbox HDD"


@dataclass(frozen=True)
class Slow9p:
    """A 9p-like FUSE mount at ``path``, ``latency_ms`` per metadata operation."""

    path: str = "/mnt/c"
    latency_ms: float = SLOW9P_LATENCY_MS


@dataclass(frozen=True)
class Hdd:
    """A throttled ext4 disk mounted at ``path``."""

    path: str = "/home"
    read_iops: int = HDD_IOPS
    write_iops: int = HDD_IOPS
    size_gib: int = HDD_SIZE_GIB


Storage = Slow9p | Hdd


def parse(spec: Storage | str) -> Storage:
    """A storage profile from its name (``"slow9p"``, ``"hdd"``) or itself."""
    if isinstance(spec, Slow9p | Hdd):
        profile: Storage = spec
    elif spec == "slow9p":
        profile = Slow9p()
    elif spec == "hdd":
        profile = Hdd()
    else:
        raise ValueError(f"unknown storage profile {spec!r}; known: slow9p, hdd")
    if not SAFE_PATH.match(profile.path) or profile.path.startswith(("/proc", "/sys", "/dev")):
        raise ValueError(f"storage path {profile.path!r}: want a plain absolute path")
    return profile


StorageArg = Storage | str | Sequence[Storage | str | Sequence[Storage | str] | None] | None


def per_host(storage: StorageArg, count: int) -> list[list[Storage]]:
    """``storage=`` as one list of profiles per host.

    ``"hdd"`` or ``Hdd()``: that profile on every host; ``["slow9p", "hdd"]``: both
    on every host; ``[["hdd"], None]``: a list (or None) per host.
    """
    if storage is None:
        return [[] for _ in range(count)]
    if isinstance(storage, str | Slow9p | Hdd):
        return [[parse(storage)] for _ in range(count)]
    items = list(storage)
    if all(isinstance(i, str | Slow9p | Hdd) for i in items):
        flat = [parse(i) for i in items]  # type: ignore[arg-type]
        return [list(flat) for _ in range(count)]
    if len(items) != count:
        raise ValueError(f"{len(items)} storage lists for {count} hosts")
    per_host: list[list[Storage]] = []
    for item in items:
        if item is None:
            per_host.append([])
        elif isinstance(item, str | Slow9p | Hdd):
            per_host.append([parse(item)])
        else:
            per_host.append([parse(i) for i in item])
    return per_host


def missing_requirement(specs: Sequence[Storage]) -> str | None:
    """Why these storage profiles cannot be had here, or None."""
    found = hierarchies()
    if "track" not in found:
        return "slow storage needs a cgroup hierarchy to track the host's processes"
    if any(isinstance(s, Hdd) for s in specs):
        if "blkio" not in found:
            return "the hdd profile needs the cgroup v1 blkio controller (IOPS throttling)"
        for tool in ("losetup", "mkfs.ext4", "nsenter"):
            if shutil.which(tool) is None:
                return f"the hdd profile needs {tool}"
    if any(not isinstance(s, Hdd) for s in specs):
        if not Path("/dev/fuse").exists():
            return "the slow9p profile needs /dev/fuse (modprobe fuse)"
        try:
            import fuse  # noqa: F401
        except (ImportError, OSError) as exc:
            return f"the slow9p profile needs fusepy and libfuse2: {exc}"
    return None


@dataclass
class Disk:
    """An ``Hdd`` made real: its image, loop device and the name the host sees."""

    spec: Hdd
    image: Path
    loop: str  # /dev/loopN
    majmin: str  # 7:N
    name: str  # sdX, as the host sees it

    @property
    def device_inside(self) -> str:
        return f"/dev/{self.name}"


@dataclass
class Prepared:
    """A host's storage, ready before its launcher starts."""

    slow: list[tuple[Slow9p, Path]] = field(default_factory=list)  # with its backing dir
    disks: list[Disk] = field(default_factory=list)
    sys_block: Path | None = None  # the host's /sys/class/block, when it has a disk

    def loops(self) -> list[str]:
        return [d.loop for d in self.disks]


def prepare(host_dir: Path, specs: list[Storage], block_base: Path) -> Prepared:
    """Images, loop devices, backing dirs and the /sys/class/block view, outside any namespace.

    + block_base: the /sys/class/block the host would see (a profile's, or the real one)
    """
    out = Prepared()
    for index, spec in enumerate(specs):
        if isinstance(spec, Slow9p):
            backing = host_dir / f"slow9p-{index}"
            # drvfs shows every directory rwx for everyone (no Unix metadata on NTFS).
            backing.mkdir(mode=0o777)
            os.chmod(backing, 0o777)
            out.slow.append((spec, backing))
        else:
            out.disks.append(_make_disk(host_dir, index, spec, block_base, out.disks))
    if out.disks:
        out.sys_block = _sys_block_view(host_dir, block_base, out.disks)
    return out


def _make_disk(host_dir: Path, index: int, spec: Hdd, base: Path, made: list[Disk]) -> Disk:
    image = host_dir / f"hdd-{index}.img"
    with open(image, "wb") as fh:
        fh.truncate(spec.size_gib << 30)
    _run(["mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=0,lazy_journal_init=0",
          str(image)])  # fmt: skip
    loop = _run(["losetup", "--find", "--show", "--direct-io=on", str(image)]).strip()
    sysfs = Path("/sys/block") / Path(loop).name
    majmin = (sysfs / "dev").read_text().strip()
    # The real flag too, for tools that follow /sys/dev/block/MAJ:MIN (gotune verify does).
    (sysfs / "queue" / "rotational").write_text("1\n")
    taken = {p.name for p in base.iterdir()} | {d.name for d in made}
    name = next(f"sd{c}" for c in reversed(string.ascii_lowercase) if f"sd{c}" not in taken)
    return Disk(spec, image, loop, majmin, name)


def _sys_block_view(host_dir: Path, base: Path, disks: list[Disk]) -> Path:
    """A /sys/class/block for the host: the real entries but its loop devices, plus its disks."""
    view = host_dir / "sys-class-block"
    view.mkdir()
    hidden = {Path(d.loop).name for d in disks}
    for entry in base.iterdir():
        if entry.name not in hidden:
            target = os.readlink(entry) if entry.is_symlink() else str(entry)
            (view / entry.name).symlink_to(target)
    for disk in disks:
        sectors = (Path("/sys/block") / Path(disk.loop).name / "size").read_text().strip()
        files = {
            "dev": disk.majmin,
            "size": sectors,
            "removable": "0",
            "ro": "0",
            "queue/rotational": "1",
            "queue/logical_block_size": "512",
            "device/model": HDD_MODEL,
            "device/vendor": "ATA",
        }
        for rel, value in files.items():
            attribute = view / disk.name / rel
            attribute.parent.mkdir(parents=True, exist_ok=True)
            attribute.write_text(value + "\n")
    return view


def _run(argv: list[str]) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {out.stderr.strip() or out.stdout.strip()}")
    return out.stdout


def slowfs_lines(spec: Slow9p, backing: Path, mountpoint: str) -> list[str]:
    """Shell lines that start the FUSE daemon on ``mountpoint`` and wait until it is mounted.

    The daemon dies with the shell that started it (pdeathsig): for a plain host
    that is its sshd, for a systemd host the launcher.
    """
    q = shlex.quote
    mp = q(mountpoint)
    daemon = [
        "setpriv", "--pdeathsig", "KILL", "--", sys.executable, str(SLOWFS), str(backing),
        mountpoint, "--latency-ms", str(spec.latency_ms), "--subtype", "9p",
        "--fsname", WSL_SOURCE,
    ]  # fmt: skip
    tries = int(MOUNT_TIMEOUT_S / 0.02)
    return [
        f"mkdir -p {mp}",
        " ".join(q(a) for a in daemon) + " </dev/null &",
        f"i=0; until mountpoint -q {mp}; do i=$((i+1)); [ $i -lt {tries} ] || "
        f"{{ echo 'sandbox: slowfs did not mount {mountpoint}' >&2; exit 1; }}; sleep 0.02; done",
    ]


def plain_lines(prepared: Prepared, root: Path) -> list[str]:
    """A plain host's start-script lines: mounts under its root, in its namespace."""
    q = shlex.quote
    lines: list[str] = []
    for spec, backing in prepared.slow:
        lines += slowfs_lines(spec, backing, str(root) + spec.path)
    for disk in prepared.disks:
        where = q(str(root) + disk.spec.path)
        lines += [f"mkdir -p {where}", f"mount -t ext4 {q(disk.loop)} {where}"]
    if prepared.sys_block is not None:
        lines.append(
            f"mount --bind {q(str(prepared.sys_block))} {q(str(root) + '/sys/class/block')}"
        )
    return lines


def systemd_escape_path(path: str) -> str:
    """``systemd-escape --path`` for the plain paths ``parse`` accepts."""
    return "-".join(part.replace("-", "\\x2d") for part in path.strip("/").split("/"))


def mount_unit(disk: Disk) -> tuple[str, str]:
    """The unit (name, text) with which a systemd host mounts its disk at boot.

    A unit rather than fstab: systemd's fstab generator skips device entries in
    a container; a mount unit's device needs no udev there.
    """
    name = f"{systemd_escape_path(disk.spec.path)}.mount"
    text = (
        "# Written by the gotune test sandbox: this host's throttled disk.\n"
        f"[Unit]\nDescription=sandbox HDD {disk.name} at {disk.spec.path}\n\n"
        f"[Mount]\nWhat={disk.device_inside}\nWhere={disk.spec.path}\nType=ext4\n\n"
        "[Install]\nWantedBy=local-fs.target\n"
    )
    return name, text


def nspawn_args(prepared: Prepared, slow_mounts: list[str]) -> list[str]:
    """systemd-nspawn options that put a systemd host's storage in place.

    + slow_mounts: where each Slow9p's FUSE mount is, outside the container
    """
    args = [
        f"--bind={mp}:{spec.path}" for (spec, _), mp in zip(prepared.slow, slow_mounts, strict=True)
    ]
    args += [f"--bind={d.loop}:{d.device_inside}" for d in prepared.disks]
    if prepared.sys_block is not None:
        args.append(f"--bind-ro={prepared.sys_block}:/sys/class/block")
    return args


def detach(loop: str, image: str) -> None:
    """Detach a loop device, only while it is still backed by ``image``."""
    name = Path(loop).name
    if not re.fullmatch(r"loop\d+", name):
        return
    try:
        backing = (Path("/sys/block") / name / "loop" / "backing_file").read_text().strip()
    except OSError:
        return  # detached already
    if backing.removesuffix(" (deleted)") != image:
        return  # reused by someone else since
    subprocess.run(["losetup", "-d", loop], capture_output=True, check=False, timeout=30)


def holders(majmin: str) -> dict[str, int]:
    """Mount namespaces that mount device ``majmin``: namespace -> one PID in it."""
    found: dict[str, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ns = os.readlink(f"/proc/{entry.name}/ns/mnt")
            if ns in found:
                continue
            with open(f"/proc/{entry.name}/mountinfo") as fh:
                if any(line.split(" ", 3)[2] == majmin for line in fh):
                    found[ns] = int(entry.name)
        except (OSError, IndexError):
            continue
    return found


def remount(disk: Disk, target: int, where: str, device: str) -> None:
    """Unmount a disk and mount it again in the mount namespace of process ``target``.

    The kernel drops a filesystem's page, inode and dentry caches with its last
    mount, so the next reads come from the (throttled) device. Any other
    namespace that still mounts it (a service's private namespace) would keep
    that cache alive unseen: that, or a process using the disk, is an error.
    """
    own = os.readlink(f"/proc/{target}/ns/mnt")
    others = {ns: pid for ns, pid in holders(disk.majmin).items() if ns != own}
    if others:
        raise RuntimeError(
            f"{disk.spec.path} is also mounted in the namespaces of PIDs "
            f"{sorted(others.values())}: stop them first"
        )
    q = shlex.quote
    out = subprocess.run(
        ["nsenter", "-t", str(target), "-m", "--", "sh", "-c",
         f"sync && umount {q(where)} && mount -t ext4 {q(device)} {q(where)}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"cannot remount {disk.spec.path}: {out.stderr.strip()}")
