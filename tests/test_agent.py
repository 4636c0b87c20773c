"""The agent: standard library only, one reproducible zipapp, and the helpers it shares.

Everything that runs on a target lives in ``gotune/agent`` and reaches the host as
``gotune.pyz``; these tests hold that line (an import outside the standard library
fails here, wherever it hides) and pin down the shared helpers: the mount
classification facts and verify both use, sizes, the Prometheus renderer and the
atomic writer.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import gotune
from gotune.agent import mounts
from gotune.agent.fsutil import TMP_PREFIX, write_atomic
from gotune.agent.mounts import MountEntry, mount_class, parse_mountinfo, parse_proc_mounts
from gotune.agent.prom import Exposition, escape_label, format_value, parse_samples
from gotune.agent.units import format_bytes, parse_size
from gotune.zipapp import SHARED_MODULES, build, build_bytes

PKG = Path(gotune.__file__).resolve().parent
AGENT_FILES = sorted([PKG / name for name in SHARED_MODULES]
                     + [p for p in (PKG / "agent").rglob("*.py") if "__pycache__" not in p.parts])
# What agent code may import besides the standard library.
ALLOWED_GOTUNE = ("gotune", "gotune.errors", "gotune.agent")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every module ``source`` imports, anywhere (functions, ``try`` blocks), absolute."""
    package = module if is_package else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level-1 steps
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.append(base)
    return names


def forbidden(name: str) -> bool:
    if name.split(".")[0] in sys.stdlib_module_names:
        return False
    return not (name in ALLOWED_GOTUNE or name.startswith("gotune.agent."))


def test_every_agent_module_imports_only_the_standard_library_and_the_agent() -> None:
    assert len(AGENT_FILES) > 30  # the walk found the package
    bad = {}
    for path in AGENT_FILES:
        names = imported_modules(path.read_text(), module_name(path), path.name == "__init__.py")
        if wrong := [n for n in names if forbidden(n)]:
            bad[str(path.relative_to(PKG.parent))] = wrong
    assert bad == {}


def test_the_import_check_sees_an_import_hidden_in_a_function() -> None:
    source = (
        "import json\n"
        "def late():\n"
        "    try:\n"
        "        from gotune.facts.model import Facts\n"
        "    except ImportError:\n"
        "        import pyinfra.api\n"
        "    from . import mounts\n"
    )
    names = imported_modules(source, "gotune.agent.verify.runner")
    assert [n for n in names if forbidden(n)] == ["gotune.facts.model", "pyinfra.api"]
    assert "gotune.agent.verify" in names  # relative imports are resolved


# -- the zipapp ------------------------------------------------------------------------


def test_the_zipapp_is_reproducible_and_holds_exactly_the_agent(tmp_path: Path) -> None:
    first, second = tmp_path / "a.pyz", tmp_path / "b.pyz"
    assert build(first) == build(second)
    assert first.read_bytes() == second.read_bytes() == build_bytes()
    assert first.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(first) as zf:
        names = sorted(zf.namelist())
        dates = {info.date_time for info in zf.infolist()}
    expected = sorted(["__main__.py"] + [p.relative_to(PKG.parent).as_posix() for p in AGENT_FILES])
    assert names == expected
    assert dates == {(1980, 1, 1, 0, 0, 0)}
    assert oct(first.stat().st_mode & 0o777) == "0o755"


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("agent") / "gotune.pyz"
    build(path)
    return path


def isolated(pyz: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """The zipapp in an interpreter with no site-packages, no PYTHONPATH, no cwd on the path."""
    return subprocess.run([sys.executable, "-I", "-S", str(pyz), *argv], capture_output=True,
                          text=True, timeout=60, cwd="/", check=False)


@pytest.mark.parametrize("argv", [["mirror", "--help"], ["wear", "--help"],
                                  ["numa-measure", "--help"], ["verify-runner", "--help"]])
def test_each_agent_command_starts_without_site_packages(pyz: Path, argv: list[str]) -> None:
    out = isolated(pyz, *argv)
    assert out.returncode == 0, out.stderr
    assert "usage: gotune" in out.stdout


def test_the_verify_runner_answers_from_the_zipapp(pyz: Path, tmp_path: Path) -> None:
    history = tmp_path / "verify" / "history.jsonl"
    request = {"mode": "record", "path": str(history), "record": {"verdict": "pass"}}
    out = isolated(pyz, "verify-runner", json.dumps(request))
    assert out.returncode == 0, out.stderr
    assert out.stdout == f'GOTUNE-VERIFY {{"recorded": "{history}"}}\n'
    assert json.loads(history.read_text()) == {"verdict": "pass"}
    bad = isolated(pyz, "verify-runner", "[1]")
    assert json.loads(bad.stdout.removeprefix("GOTUNE-VERIFY ")) == {
        "error": "runner arguments must be a JSON object"}


def test_internal_commands_are_the_agents_not_gotunes() -> None:
    out = subprocess.run([sys.executable, "-m", "gotune", "--help"], capture_output=True,
                         text=True, timeout=60, check=False)
    assert "mirror" in out.stdout and "numa-measure" not in out.stdout
    assert "verify-runner" not in out.stdout
    refused = subprocess.run([sys.executable, "-m", "gotune", "verify-runner", "{}"],
                             capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2


# -- mount tables and classification ---------------------------------------------------

MOUNTINFO = "\n".join([
    "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw",
    "23 22 0:21 / /proc rw,nosuid shared:2 - proc proc rw",
    r"30 22 0:40 / /mnt/a\040b\012c\134d rw shared:9 - tmpfs tmp\040fs rw,size=1024k",
    "31 22 0:41 / /mnt/nfs rw - nfs4 server:/export rw,vers=4.2",
    "32 22 0:42 / /mnt/c rw - 9p drvfs rw,trans=fd",
    "33 22 0:43 / /mnt/sshfs rw,nosuid - fuse.sshfs me@host:/ rw,user_id=0",
    "34 22 0:44 / /mnt/9p rw - fuse.9p stand-in rw",
    "35 22 0:45 / /mnt/ntfs rw - fuseblk /dev/sdb1 rw",
    "garbage line",
])


def test_mountinfo_paths_with_spaces_newlines_and_backslashes_are_unescaped() -> None:
    table = parse_mountinfo(MOUNTINFO)
    assert len(table) == 8  # the garbage line is skipped
    hostile = table[2]
    assert hostile.point == "/mnt/a b\nc\\d" and hostile.source == "tmp fs"
    assert hostile.raw_point == r"/mnt/a\040b\012c\134d"
    assert hostile.options == ("rw",) and hostile.super_options == ("rw", "size=1024k")
    assert mounts.mount_of("/mnt/a b\nc\\d/go-build", table) is hostile
    assert mounts.mount_of("/mnt/a b", table) is table[0]  # a prefix of a name is not a parent


def test_proc_mounts_from_older_recordings_parse_too() -> None:
    (entry,) = parse_proc_mounts(r"/dev/sda1 /srv/my\040disk ext4 rw,noatime 0 0")
    assert entry.point == "/srv/my disk" and entry.fstype == "ext4" and entry.devno == ""
    assert entry.options == ("rw", "noatime")


def test_the_later_of_two_mounts_on_one_point_holds_its_paths() -> None:
    table = [MountEntry("/", "/dev/sda1", "ext4"), MountEntry("/data", "/dev/sdb1", "ext4"),
             MountEntry("/data/", "tmpfs", "tmpfs")]
    assert mounts.mount_of("/data/x", table) is table[2]
    assert mounts.mount_of("/datax", table) is table[0]


@pytest.mark.parametrize(("fstype", "kind"), [
    ("nfs", "network"), ("nfs4", "network"), ("cifs", "network"), ("smb3", "network"),
    ("smbfs", "network"), ("ceph", "network"), ("beegfs", "network"), ("sshfs", "network"),
    ("9p", "host-shared"), ("drvfs", "host-shared"), ("virtiofs", "host-shared"),
    ("fuse.9p", "host-shared"), ("fuse", "fuse"), ("fuse.sshfs", "fuse"),
    ("fuse.rclone", "fuse"), ("fuseblk", "local"), ("tmpfs", "memory"), ("ramfs", "memory"),
    ("proc", "pseudo"), ("cgroup2", "pseudo"), ("ext4", "local"), ("overlay", "local"),
    ("", "local"),
])
def test_each_filesystem_type_is_one_kind(fstype: str, kind: str) -> None:
    assert mounts.fs_kind(fstype) == kind


def test_the_predicates_agree_with_the_kinds() -> None:
    assert mounts.is_network("9p") and mounts.is_network("nfs4") and not mounts.is_network("fuse")
    assert mounts.is_network_or_fuse("fuse.sshfs") and mounts.is_network_or_fuse("drvfs")
    assert not mounts.is_network_or_fuse("fuseblk") and not mounts.is_network_or_fuse(None)
    assert mounts.is_host_shared("fuse.9p") and not mounts.is_host_shared("nfs")
    assert mounts.is_memory("tmpfs") and mounts.is_pseudo("sysfs")


def disk_class(entry: MountEntry) -> str:
    return {"/dev/nvme0n1p2": "nvme", "/dev/sdb1": "hdd"}.get(entry.source, "unknown")


def test_mount_classes_for_network_fuse_memory_and_disks() -> None:
    table = parse_mountinfo(MOUNTINFO)
    classes = {m.point: mount_class(m, table, disk_class) for m in table}
    assert classes["/"] == "nvme"
    assert classes["/mnt/a b\nc\\d"] == "tmpfs"
    assert classes["/mnt/nfs"] == classes["/mnt/c"] == classes["/mnt/sshfs"] == "network"
    assert classes["/mnt/9p"] == "network"
    assert classes["/mnt/ntfs"] == "hdd"


def overlay(point: str, upper: str) -> MountEntry:
    return MountEntry(point, "overlay", "overlay", "0:50", ("rw",),
                      ("rw", "lowerdir=/", f"upperdir={upper}", "workdir=/w"))


def test_an_overlay_root_is_unknown_even_when_its_upperdir_looks_visible() -> None:
    # A sandbox or container root: upperdir names a path of the namespace that built it;
    # here /dev/shm is a fresh tmpfs of this namespace, not where the writes go.
    root = overlay("/", "/dev/shm/sandbox/host1/upper")
    table = [MountEntry("/dev/shm", "tmpfs", "tmpfs"), root,
             MountEntry("/dev/shm", "tmpfs", "tmpfs")]
    assert mounts.overlay_upper_mount(root, table) is None
    assert mount_class(root, table, disk_class, exists=lambda p: True) == "unknown"


def test_an_overlay_is_classified_from_an_upperdir_the_table_proves() -> None:
    disk = MountEntry("/", "/dev/nvme0n1p2", "ext4", "259:2")
    docker = overlay("/var/lib/docker/overlay2/x/merged", "/var/lib/docker/overlay2/x/diff")
    table = [disk, docker]
    assert mounts.overlay_upper_mount(docker, table) is disk
    assert mount_class(docker, table, disk_class) == "nvme"
    assert mount_class(docker, table, disk_class, exists=os.path.isdir) == "unknown"  # not here
    later = [docker, disk]  # a mount made after the overlay cannot hold its upper layer
    assert mount_class(docker, later, disk_class) == "unknown"
    # Mounted over its own layers' directory: the upper layer is on the mount it covers.
    over = overlay("/srv", "/srv/upper")
    assert mount_class(over, [disk, MountEntry("/srv", "/dev/sdb1", "ext4"), over],
                       disk_class) == "hdd"
    no_upper = MountEntry("/ro", "overlay", "overlay", super_options=("lowerdir=/a:/b",))
    assert mount_class(no_upper, [disk, no_upper], disk_class) == "unknown"


@pytest.mark.parametrize(("name", "link", "vendor", "model", "virtual"), [
    ("vda", "", None, None, True),
    ("xvdb", "", None, None, True),
    ("sda", "../../devices/pci0000:00/0000:00:04.0/virtio1/host0/target0:0:0/0:0:0:0/block/sda",
     None, None, True),
    ("sda", "", "QEMU", "QEMU HARDDISK", True),
    ("sda", "", "Msft", "Virtual Disk", True),
    ("xvda", "../../devices/vbd-51712/block/xvda", None, None, True),
    ("nvme0n1", "../../devices/pci0000:00/0000:00:1d.0/nvme/nvme0", None, "Samsung SSD 980",
     False),
    ("sda", "../../devices/pci0000:00/ata1/host0/block/sda", "ATA", "WDC WD10EZEX", False),
])
def test_virtual_disks_are_known_by_bus_name_or_identity(
    name: str, link: str, vendor: str | None, model: str | None, virtual: bool
) -> None:
    assert mounts.is_virtual_disk(name, link, vendor, model) is virtual


# -- sizes, metrics, files -------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [
    ("1073741824", 1 << 30), ("512M", 512 << 20), ("1G", 1 << 30), ("1GiB", 1 << 30),
    ("1gb", 1 << 30), (" 2 T ", 2 << 40), ("0.5k", 512),
])
def test_one_size_parser_reads_curl_and_binary_suffixes(text: str, value: int) -> None:
    assert parse_size(text) == value


def test_zero_is_a_size_only_where_nothing_is_meaningful() -> None:
    with pytest.raises(ValueError, match="--limit-rate"):
        parse_size("0", "--limit-rate")
    assert parse_size("0", allow_zero=True) == 0
    assert format_bytes(1536) == "1.5 KiB" and format_bytes(100) == "100 B"
    assert format_bytes(None) == "?" and format_bytes(5 << 40) == "5.0 TiB"


def test_the_renderer_escapes_labels_and_writes_each_family_once() -> None:
    ex = Exposition()
    ex.declare("x_empty", "gauge", "Nothing yet.")
    ex.add("x_total", "counter", "Things.", {"path": 'a"b\\c\nd'}, 3.0)
    ex.add("x_total", "counter", "Things.", [("path", "e")], 0.25)
    text = ex.text()
    assert text.count("# TYPE x_total counter") == 1 and "# TYPE x_empty gauge" in text
    assert 'x_total{path="a\\"b\\\\c\\nd"} 3' in text
    assert parse_samples(text) == {'x_total{path="a\\"b\\\\c\\nd"}': 3.0, 'x_total{path="e"}': 0.25}
    assert escape_label("\\") == "\\\\"
    assert [format_value(v) for v in (float("nan"), float("inf"), 2.0**60)] == [
        "NaN", "+Inf", "1.152921504606847e+18"]


def test_the_atomic_writer_leaves_a_whole_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir" / "state.json"
    write_atomic(target, "first\n")
    write_atomic(target, b"second\n", mode=0o600)
    assert target.read_text() == "second\n"
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]
    assert not any(p.name.startswith(TMP_PREFIX) for p in target.parent.iterdir())
