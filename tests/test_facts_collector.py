"""The collector command itself, run with the real /bin/sh over constructed trees."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gotune.facts import collect
from gotune.facts.collect import Dump, build_command, collect_local, decode_sed_l, split_records
from gotune.facts.machine import parse_output

HOSTILE_NAMES = [
    "eth 0",
    'q"uote',
    "it's",
    "new\nline",
    "$(touch PWNED)",
    "`touch PWNED`",
    "semi;colon",
    "-rf",
    "tab\there",
    "*",
    "back\\slash",
    "@@V 3:x",
    "|pipe",
    "caf\u00e9",
]


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def _hostile_tree(root: Path) -> None:
    _write(
        root / "proc/cpuinfo",
        b"processor\t: 0\nmodel name\t: Evil \x00\xff\xfe CPU $(touch PWNED)\n"
        b"flags\t\t: fpu lm cmov cx8 fxsr mmx syscall sse sse2\n\nprocessor\t: 1\nmodel name",
    )  # cut short
    _write(root / "proc/meminfo", b"MemTotal:       8000000 kB\nMemAvailable: \x00\x00garbage")
    _write(root / "sys/devices/system/cpu/online", "0-1\n")
    for cpu in (0, 1):
        topo = root / f"sys/devices/system/cpu/cpu{cpu}/topology"
        _write(topo / "core_id", f"{cpu}\n")
        _write(topo / "physical_package_id", "0")  # no trailing newline
        _write(topo / "thread_siblings_list", f"{cpu}\n")
    _write(root / "sys/devices/system/node/node0/cpulist", "0-1\n")
    _write(root / "sys/devices/system/node/node0/meminfo", "Node 0 MemTotal: 8000000 kB\n")
    _write(root / "sys/devices/system/node/node0/distance", "10\n")
    for i, name in enumerate(HOSTILE_NAMES):
        net = root / "sys/class/net" / name
        _write(net / "operstate", "up\n")
        _write(net / "speed", b"1000\n" if i % 2 else b"\x00\x01\x02 binary")
        _write(net / "device/numa_node", "-1\n")
        block = root / "sys/class/block" / name
        _write(block / "size", "2048\n")
        _write(block / "queue/rotational", "0\n")
    _write(root / "etc/os-release", b'ID="debian"\nVERSION_ID="12"\nNAME=\xff\xfe\n')
    _write(
        root / "proc/self/mountinfo",
        b"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        b"23 22 0:5 / /mnt/with\\040space\\012and\\134more rw - tmpfs tmpfs rw\n",
    )


def test_hostile_names_and_files_survive_the_real_shell(tmp_path: Path) -> None:
    root = tmp_path / "root with 'quotes' and $(spaces)"
    _hostile_tree(root)
    lines = collect_local(str(root))
    assert all(line.isascii() for line in lines)
    facts = parse_output(lines)
    assert sorted(n.name for n in facts.nics) == sorted(HOSTILE_NAMES)
    assert sorted(d.name for d in facts.storage.devices) == sorted(HOSTILE_NAMES)
    speeds = {n.name: n.speed_mbps for n in facts.nics}
    assert (
        speeds['q"uote'] == 1000 and speeds["eth 0"] is None
    )  # binary junk is unknown, not a crash
    assert facts.cpu.online == [0, 1] and facts.cpu.cores == 2 and facts.cpu.packages == 1
    assert facts.cpu.model is not None and "Evil" in facts.cpu.model
    assert facts.memory.total_bytes == 8000000 * 1024 and facts.memory.available_bytes is None
    assert facts.platform.distro == "debian"
    assert {m.path for m in facts.storage.mounts} == {"/", "/mnt/with space\nand\\more"}
    # Nothing a file or name said was ever run.
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()


def test_missing_everything_degrades_to_unknowns(tmp_path: Path) -> None:
    (tmp_path / "sys").mkdir()
    facts = parse_output(collect_local(str(tmp_path)))
    assert facts.cpu.threads is None and facts.memory.total_bytes is None
    assert any("cpuinfo" in u for u in facts.unknown)
    assert any("memory.total_bytes" in u for u in facts.unknown)


def test_a_fifo_or_device_node_in_a_tree_never_blocks(tmp_path: Path) -> None:
    _write(tmp_path / "proc/cpuinfo", "processor : 0\n")
    os.mkfifo(tmp_path / "proc/meminfo")
    (tmp_path / "sys/devices/system/cpu").mkdir(parents=True)
    os.mkfifo(tmp_path / "sys/devices/system/cpu/online")
    os.mkfifo(tmp_path / "etc-os-release-fifo")
    facts = parse_output(collect_local(str(tmp_path), timeout=30))
    assert facts.cpu.online == [0] and facts.memory.total_bytes is None


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    names=st.lists(
        st.text(
            alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/\x00"),
            min_size=1,
            max_size=20,
        ).filter(lambda s: s not in (".", "..")),
        min_size=1,
        max_size=5,
        unique=True,
    ),
    content=st.binary(max_size=300),
)
def test_any_interface_name_and_content_round_trip_through_sh(
    tmp_path_factory: pytest.TempPathFactory, names: list[str], content: bytes
) -> None:
    root = tmp_path_factory.mktemp("prop")
    for name in names:
        try:
            _write(root / "sys/class/net" / name / "operstate", content)
        except (OSError, UnicodeEncodeError):
            return  # a name this filesystem cannot hold is no test of ours
    dump = split_records(decode_sed_l(collect_local(str(root))))
    for name in names:
        first = content.split(b"\n", 1)[0].replace(b"\x00", b"")
        got = dump.values.get(f"/sys/class/net/{name}/operstate")
        assert got is not None
        assert got.encode("utf-8", "replace") == first.decode("utf-8", "replace").encode(
            "utf-8", "replace"
        )


def test_live_host_collects_in_one_command_with_plausible_facts() -> None:
    facts = parse_output(collect_local("/", [_me()]), users=[_me()])
    assert facts.cpu.threads == os.cpu_count()
    assert facts.memory.total_bytes and facts.memory.total_bytes > 0
    assert facts.storage.mounts and any(m.path == "/" for m in facts.storage.mounts)
    assert facts.user.name == _me() and "home" in facts.storage.paths


def _me() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def test_gotune_facts_sysroot_prints_one_document(tmp_path: Path) -> None:
    _hostile_tree(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "gotune", "facts", "--sysroot", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["cpu"]["threads"] == 2 and "hosts" not in doc


def test_gotune_facts_sysroot_refuses_a_non_tree(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gotune", "facts", "--sysroot", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "not a directory" in out.stderr


def test_collector_is_one_posix_sh_command() -> None:
    cmd = build_command("/")
    # dash is Debian's /bin/sh; "sh -n" parses without running.
    assert subprocess.run(["sh", "-n", "-c", cmd], capture_output=True).returncode == 0


@pytest.mark.skipif(
    shutil.which("shellcheck") is None,
    reason="shellcheck is not installed (Debian package shellcheck; scripts/test installs it)",
)
def test_the_collector_script_passes_shellcheck_as_posix_sh() -> None:
    with resources.as_file(collect.SCRIPT_FILE) as script:
        out = subprocess.run(["shellcheck", "-s", "sh", str(script)],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stdout


def test_the_script_is_sent_as_shipped_after_a_prelude_of_quoted_inputs() -> None:
    prelude, rest = build_command(
        "/tmp/a root", ["dev", "ops"], "/mnt/c/Users/O'Brien $HOME"
    ).split("\n", 1)
    assert re.search(r"R='/tmp/a root'; USERS='dev ops'; MARKER=@[0-9a-f]{32}; "
                     r"TOOL_TIMEOUT=\d+; STATVFS_TIMEOUT=\d+; WINDOWS_TIMEOUT=\d+; "
                     r"WSL_PROFILE='/mnt/c/Users/O'\"'\"'Brien \$HOME'; WSL_LOOKUP_ROUNDS=\d+; "
                     r"WSL_LOOKUPS=\d+; WSL_STATS=\d+; WSL_HISTORY_LINES=\d+; "
                     r"WSL_CANDIDATES=\d+$", prelude)  # fmt: skip
    assert rest.startswith(collect.SCRIPT)


def test_gotune_facts_on_this_machine_prints_hosts_json_and_a_summary() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gotune", "facts", "@local", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    hosts = json.loads(out.stdout)["hosts"]
    assert list(hosts) == ["@local"]
    assert hosts["@local"]["cpu"]["threads"] == os.cpu_count()
    text = subprocess.run(
        [sys.executable, "-m", "gotune", "facts", "@local"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert text.returncode == 0, text.stderr
    assert (
        text.stdout.startswith("@local: ") and "  cpu " in text.stdout and "  node0" in text.stdout
    )


def test_cgroup_limits_are_read_along_the_process_cgroup_path(tmp_path: Path) -> None:
    _write(tmp_path / "proc/self/cgroup", "0::/a/b\n4:memory:/m\n9:cpu,cpuacct:/../../etc\n")
    _write(tmp_path / "sys/fs/cgroup/a/cpu.max", "150000 100000\n")
    _write(tmp_path / "sys/fs/cgroup/a/b/cpu.max", "max 100000\n")
    _write(tmp_path / "sys/fs/cgroup/memory/m/memory.limit_in_bytes", "1073741824\n")
    _write(tmp_path / "etc/cpu.cfs_quota_us", "1\n")  # only a ".." path would reach it
    platform = parse_output(collect_local(str(tmp_path))).platform
    assert platform.cgroup_cpu_limit == 1.5
    assert platform.cgroup_memory_limit_bytes == 1 << 30


def _dump(root: Path | str) -> Dump:
    return split_records(decode_sed_l(collect_local(str(root))))


@pytest.mark.parametrize("odd_target", [None, "../../bus/x\ny"])
def test_symlink_targets_round_trip_whether_read_together_or_alone(
    tmp_path: Path, odd_target: str | None
) -> None:
    # One readlink reads all links; a target holding a newline makes its lines
    # untrustworthy, and then every link is read alone. Both give the same map.
    targets = ["../../devices/virtual/net/lo", "-rf", "it's $(touch PWNED)", "a b"]
    if odd_target is not None:
        targets.append(odd_target)
    for i, target in enumerate(targets):
        net = tmp_path / "sys/class/net" / f"if{i}"
        _write(net / "operstate", "up\n")
        (net / "device").mkdir()
        os.symlink(target, net / "device/driver")
    links = _dump(tmp_path).links
    assert links == {
        f"/sys/class/net/if{i}/device/driver": target for i, target in enumerate(targets)
    }
    assert not list(tmp_path.rglob("PWNED"))


def test_whole_files_keep_every_byte_next_to_forged_headers_and_markers(tmp_path: Path) -> None:
    # The contents of all whole files go through one sed; headers carry a random
    # marker. Content that imitates headers, markers or trailers stays content,
    # and a name holding a newline (its own sed) keeps its bytes too.
    forged = b"@@C 3:abc\n@" + b"0" * 32 + b"@@C 1:x\n|@@end 0\n@@end 1\n\x00\xff\n@tail no newline"
    contents = {"node0": b"", "node1\nevil": forged, "node2 x": forged + b"\n", "node3": b"\n\n"}
    for name, data in contents.items():
        _write(tmp_path / "sys/devices/system/node" / name / "meminfo", data)
    _write(tmp_path / "proc/cpuinfo", forged)
    files = _dump(tmp_path).files
    assert files["/proc/cpuinfo"] == forged
    for name, data in contents.items():
        assert files[f"/sys/devices/system/node/{name}/meminfo"] == data


def test_each_command_carries_its_own_header_marker() -> None:
    first, second = build_command("/"), build_command("/")
    assert first != second
    marks = {m for cmd in (first, second) for m in re.findall(r"@[0-9a-f]{32}", cmd)}
    assert len(marks) == 2
    out = "\n".join(collect_local("/tmp/no-such-root-for-gotune"))
    assert "@@gotune 1" in out and not re.search(r"@[0-9a-f]{32}", out)


def test_one_hung_mount_does_not_hide_the_statvfs_of_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hung NFS server cannot exist here: a `stat` first on PATH stands in for
    # it, sleeping whenever it is asked about "/", and passing on otherwise.
    fake = tmp_path / "bin/stat"
    _write(
        fake, '#!/bin/sh\nfor a; do [ "$a" = / ] && exec sleep 30; done\nexec /usr/bin/stat "$@"\n'
    )
    fake.chmod(0o755)
    mounts = {k for k in _dump("/").commands if k.startswith("statvfs ")}
    if len(mounts - {"statvfs /"}) < 1:
        pytest.skip("this machine has one local mount: nothing to hide")
    with monkeypatch.context() as m:
        m.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
        m.setattr(collect, "STATVFS_TIMEOUT_S", 1)
        commands = _dump("/").commands
    stats = {k: v for k, v in commands.items() if k.startswith("statvfs ")}
    # Other tests mount and unmount meanwhile (this is the machine's own list): the
    # mounts there before and after were there throughout.
    after = {k for k in _dump("/").commands if k.startswith("statvfs ")}
    assert mounts & after <= set(stats) <= mounts | after
    assert stats.pop("statvfs /")[1] == 124  # timed out
    assert all(status == 0 and len(out.split()) == 4 for out, status in stats.values())


def test_attribute_files_read_as_empty_are_read_again_for_every_cpu(tmp_path: Path) -> None:
    # What the shell's read finds empty (sysfs binary attributes) is read again
    # for all CPUs at once; each file still gets its own first line.
    online = {"cpu0": b"1\n", "cpu1": b"", "cpu2": b"\n1\n", "cpu3": b"0", "cpu4\nodd": b""}
    for name, data in online.items():
        _write(tmp_path / "sys/devices/system/cpu" / name / "online", data)
        _write(tmp_path / "sys/devices/system/cpu" / name / "topology/core_id", b"")
    values = _dump(tmp_path).values
    want = {"cpu0": "1", "cpu1": "", "cpu2": "", "cpu3": "0", "cpu4\nodd": ""}
    for name, first in want.items():
        assert values[f"/sys/devices/system/cpu/{name}/online"] == first
        assert values[f"/sys/devices/system/cpu/{name}/topology/core_id"] == ""
