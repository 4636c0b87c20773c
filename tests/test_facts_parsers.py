"""The pure parsers: real formats in, typed facts out, garbage never fatal."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gotune.agent.mounts import HOST_SHARED_FSTYPES, NETWORK_FSTYPES
from gotune.facts.caches import default_gocache, default_gomodcache
from gotune.facts.collect import SCRIPT, Dump, build_command, decode_sed_l, split_records
from gotune.facts.cpu import cpu_kinds, x86_64_level
from gotune.facts.machine import parse_output
from gotune.facts.memory import parse_dmidecode, parse_memory, parse_udev_memory
from gotune.facts.model import Facts
from gotune.facts.nics import parse_nics
from gotune.facts.numa import parse_numa
from gotune.facts.platform import (
    cgroup_limits,
    distro_id,
    distro_like,
    parse_os_release,
    virtualization,
)
from gotune.facts.storage import classify, parse_devices, parse_mounts, place
from gotune.facts.sysfs import parse_cpulist, parse_cpumask
from gotune.facts.toolchain import parse_goenv


def sed_l(data: bytes) -> list[str]:
    """What the collector's encoder makes of some bytes (GNU sed here)."""
    out = subprocess.run(
        ["sed", "-n", "l"], input=data, capture_output=True, check=True, env={"LC_ALL": "C"}
    )
    return out.stdout.decode("ascii").splitlines()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_sed_l_encoding_round_trips_any_bytes(data: bytes) -> None:
    # sed ends a last line that had no newline with one; that is the only change.
    expected = data if data.endswith(b"\n") or not data else data + b"\n"
    assert decode_sed_l(sed_l(data)) == expected


def test_sed_l_output_is_plain_ascii_lines_pyinfra_can_decode() -> None:
    lines = sed_l(b"\x00\xff\xfe caf\xc3\xa9 \x1b[31m\r\n" + b"x" * 300)
    assert all(line.isascii() and "\n" not in line for line in lines)
    assert len(lines) > 2  # the long line was folded, and still decodes


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=40))
def test_arbitrary_output_lines_never_crash_the_parser(lines: list[str]) -> None:
    facts = parse_output(lines, users=["dev"])
    assert isinstance(facts, Facts)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_decoded_streams_never_crash_the_splitter(raw: bytes) -> None:
    split_records(b"@@gotune 1\n" + raw)


def _record(tag: str, name: bytes, body: list[bytes] | None = None) -> bytes:
    out = b"@@%s %d:%s\n" % (tag.encode(), len(name), name)
    return out + b"".join(b"|" + line + b"\n" for line in body or [])


@settings(max_examples=150, deadline=None)
@given(
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40),
    st.binary(max_size=200),
)
def test_hostile_names_and_contents_come_back_exactly(name: str, content: bytes) -> None:
    path = "/sys/class/net/" + name.replace("/", "_")
    encoded = path.encode()
    lines = content.split(b"\n")
    raw = b"@@gotune 1\n" + _record("C", encoded, [*lines, b"@@end 0"]) + _record("E", b"/after")
    dump = split_records(raw)
    key = re.sub("/{2,}", "/", path)
    assert dump.files[key] == content
    assert "/after" in dump.exists


def test_cut_short_file_is_an_error_not_content() -> None:
    dump = split_records(b"@@gotune 1\n" + _record("C", b"/proc/cpuinfo", [b"processor : 0"]))
    assert "/proc/cpuinfo" not in dump.files
    assert dump.errors["/proc/cpuinfo"] == "output cut short"


def test_batch_read_of_one_line_files_maps_lines_to_names() -> None:
    raw = (
        _record("N", b"/a") + _record("N", b"/b") + _record("B", b"", [b"1", b"2", b"", b"@@end 0"])
    )
    assert split_records(raw).values == {"/a": "1", "/b": "2"}
    bad = _record("N", b"/a") + _record("N", b"/b") + _record("B", b"", [b"1", b"", b"@@end 1"])
    dump = split_records(bad)
    assert not dump.values and set(dump.errors) == {"/a", "/b"}


@pytest.mark.parametrize("user", ["a b", "$(id)", "`id`", "-rf", "x;y", "", "é", "a\nb", "'q'"])
def test_hostile_user_names_are_refused_before_any_shell(user: str) -> None:
    with pytest.raises(ValueError, match="not a valid user name"):
        build_command("/", ["dev", user])


def test_the_command_interpolates_only_quoted_root_and_users() -> None:
    cmd = build_command("/tmp/it's here", ["dev", "ops"])
    assert "R='/tmp/it'\"'\"'s here'" in cmd and "USERS='dev ops'" in cmd
    with pytest.raises(TypeError):
        build_command("/", "dev")  # a string is not a list of users
    # The script itself has no eval and never pastes a variable into code.
    assert "eval" not in SCRIPT


def test_every_network_fstype_is_kept_from_statvfs() -> None:
    case_arms = re.findall(r"^\s+(\S+)\) continue;;", SCRIPT, re.M)
    skipped = {p for arm in case_arms for p in arm.split("|")}
    for fstype in NETWORK_FSTYPES | HOST_SHARED_FSTYPES:
        assert fstype in skipped or any(
            p.endswith("*") and fstype.startswith(p[:-1]) for p in skipped
        )
    assert "fuse" in skipped and "fuse.*" in skipped


def test_cpulists_and_masks() -> None:
    assert parse_cpulist("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert parse_cpulist("0-7:2/4") == [0, 1, 4, 5]
    assert parse_cpulist("") == []
    assert parse_cpulist("3-1") is None and parse_cpulist("0-99999999") is None
    assert parse_cpumask("00000000,00000003") == [0, 1]
    assert parse_cpumask("zz") is None


V2 = "cx16 lahf_lm popcnt pni sse4_1 sse4_2 ssse3"
V3 = "avx avx2 bmi1 bmi2 f16c fma abm movbe xsave"


@pytest.mark.parametrize(
    ("extra", "level"),
    [
        ("", "v1"),
        (V2, "v2"),
        (V2 + " " + V3, "v3"),
        (
            V2 + " " + V3 + " avx512f avx512bw avx512cd avx512dq avx512vl",
            "v4",
        ),
        ("avx512f avx512bw avx512cd avx512dq avx512vl", "v1"),  # no v2 flags: v4 does not count
    ],
)
def test_x86_64_level_from_flags(extra: str, level: str) -> None:
    base = "fpu cmov cx8 fxsr mmx syscall sse sse2 lm"
    assert x86_64_level(f"{base} {extra}".split()) == level
    assert x86_64_level(extra.split()) is None  # no "lm": not x86-64


def _dump(values: dict[str, str] | None = None, **kw: object) -> Dump:
    dump = Dump(values=dict(values or {}))
    for key, value in kw.items():
        setattr(dump, key, value)
    dump.complete = True
    return dump


def test_pmu_lists_name_p_and_e_cores() -> None:
    dump = _dump({"/sys/devices/cpu_core/cpus": "0-3", "/sys/devices/cpu_atom/cpus": "4-7"})
    kinds = cpu_kinds(dump, list(range(8)), "GenuineIntel")
    assert [(k.name, k.cpus, k.source) for k in kinds] == [
        ("P", [0, 1, 2, 3], "pmu"),
        ("E", [4, 5, 6, 7], "pmu"),
    ]


def test_frequency_groups_without_a_pmu_and_one_kind_when_uniform() -> None:
    freqs = {
        f"/sys/devices/system/cpu/cpu{c}/cpufreq/cpuinfo_max_freq": str(f)
        for c, f in enumerate([3000000, 3000000, 2000000, 2000000])
    }
    kinds = cpu_kinds(_dump(freqs), [0, 1, 2, 3], "ARM")
    assert [(k.name, k.cpus, k.max_mhz) for k in kinds] == [
        ("fast", [0, 1], 3000),
        ("slow", [2, 3], 2000),
    ]
    same = {k: "3000000" for k in freqs}
    assert [(k.name, k.source) for k in cpu_kinds(_dump(same), [0, 1, 2, 3], "ARM")] == [
        ("all", "uniform")
    ]


DMIDECODE = """# dmidecode 3.4
Handle 0x0040, DMI type 17, 92 bytes
Memory Device
\tSize: 16 GB
\tLocator: DIMM_A1
\tType: LPDDR5
\tSpeed: 7500 MT/s
\tConfigured Memory Speed: 7500 MT/s

Handle 0x0041, DMI type 17, 92 bytes
Memory Device
\tSize: No Module Installed
\tLocator: DIMM_A2
\tType: Unknown

Handle 0x0042, DMI type 17, 92 bytes
Memory Device
\tSize: 32768 MB
\tLocator: DIMM_B1
\tType: DDR5
\tSpeed: 5600 MT/s
"""


def test_dmidecode_modules_and_lpddr5x_inference() -> None:
    modules = parse_dmidecode(DMIDECODE)
    assert [(m.locator, m.size_bytes, m.speed_mts) for m in modules] == [
        ("DIMM_A1", 16 << 30, 7500),
        ("DIMM_B1", 32 << 30, 5600),
    ]
    dump = _dump(commands={"dmidecode": (DMIDECODE.encode(), 0)})
    unknown: list[str] = []
    memory = parse_memory(dump, unknown)
    assert memory.source == "dmidecode"
    assert (memory.modules[0].type, memory.modules[0].type_inferred) == ("LPDDR5x", True)
    assert (memory.modules[1].type, memory.modules[1].type_inferred) == ("DDR5", False)
    assert any("LPDDR5x inferred" in u for u in unknown)


UDEV_DMI = """E:MEMORY_ARRAY_LOCATION=System Board Or Motherboard
E:MEMORY_DEVICE_0_PRESENT=1
E:MEMORY_DEVICE_0_SIZE=17179869184
E:MEMORY_DEVICE_0_MEMORY_TYPE=DDR4
E:MEMORY_DEVICE_0_SPEED_MTS=3200
E:MEMORY_DEVICE_0_LOCATOR=ChannelA-DIMM0
E:MEMORY_DEVICE_1_PRESENT=0
E:MEMORY_DEVICE_1_LOCATOR=ChannelB-DIMM0
"""


def test_udev_memory_properties_when_not_root() -> None:
    assert [
        (m.type, m.speed_mts, m.size_bytes, m.locator) for m in parse_udev_memory(UDEV_DMI)
    ] == [("DDR4", 3200, 16 << 30, "ChannelA-DIMM0")]
    memory = parse_memory(_dump(files={"/run/udev/data/+dmi:id": UDEV_DMI.encode()}), [])
    assert memory.source == "udev"


def test_edac_dimms_as_the_last_resort() -> None:
    base = "/sys/devices/system/edac/mc/mc0/dimm0"
    dump = _dump(
        {
            f"{base}/size": "16384",
            f"{base}/dimm_mem_type": "Registered-DDR4",
            f"{base}/dimm_label": "CPU_SrcID#0_Ha#0_Chan#0_DIMM#0",
        }
    )
    memory = parse_memory(dump, [])
    assert memory.source == "edac"
    assert (memory.modules[0].type, memory.modules[0].size_bytes) == ("DDR4", 16 << 30)


def test_no_module_source_is_unknown_with_reasons() -> None:
    unknown: list[str] = []
    memory = parse_memory(_dump(), unknown)
    assert memory.source is None and not memory.modules
    assert any(u.startswith("memory.modules: ") for u in unknown)


@pytest.mark.parametrize(
    ("name", "link", "model", "rotational", "mmc", "expected"),
    [
        ("vda", "../devices/pci0000:00/0000:00:02.0/virtio1/block/vda", None, "1", None, "virtual"),
        ("sda", "../devices/pci0000:00/host0/block/sda", "QEMU HARDDISK", "1", None, "virtual"),
        ("sda", "../devices/pci0000:00/host0/block/sda", "Virtual disk", "0", None, "virtual"),
        ("xvda", "../devices/vbd-51712/block/xvda", None, "0", None, "virtual"),
        (
            "nvme0n1",
            "../devices/pci0000:00/nvme/nvme0/nvme0n1",
            "Samsung SSD 990",
            "0",
            None,
            "nvme",
        ),
        ("mmcblk0", "../devices/platform/mmc0/mmcblk0", None, "0", "MMC", "emmc"),
        ("mmcblk1", "../devices/platform/mmc1/mmcblk1", None, "0", "SD", "sd"),
        ("sda", "../devices/pci0000:00/ata1/block/sda", "ST2000DM008", "1", None, "hdd"),
        ("sdb", "../devices/pci0000:00/ata2/block/sdb", "CT1000MX500", "0", None, "ssd"),
        ("sdc", "../devices/pci0000:00/ata3/block/sdc", None, None, None, "unknown"),
    ],
)
def test_block_device_classes(
    name: str, link: str, model: str | None, rotational: str | None, mmc: str | None, expected: str
) -> None:
    assert classify(name, link, model, None, rotational, mmc) == expected


def test_device_mapper_takes_its_disks_class_and_mounts_find_it() -> None:
    root = "/sys/class/block"
    dump = _dump(
        {
            f"{root}/nvme0n1/queue/rotational": "0",
            f"{root}/nvme0n1/size": "1000",
            f"{root}/nvme0n1p3/dev": "259:3",
            f"{root}/dm-0/dev": "253:0",
            f"{root}/dm-0/dm/name": "vg-root",
        },
        links={
            f"{root}/nvme0n1": "../../devices/pci/nvme/nvme0/nvme0n1",
            f"{root}/nvme0n1p3": "../../devices/pci/nvme/nvme0/nvme0n1/nvme0n1p3",
            f"{root}/dm-0": "../../devices/virtual/block/dm-0",
        },
        exists={f"{root}/nvme0n1p3/partition", f"{root}/dm-0/slaves/nvme0n1p3"},
        files={
            "/proc/self/mountinfo": (
                b"22 1 253:0 / / rw,relatime - ext4 /dev/mapper/vg-root rw\n"
                b"30 22 0:40 / /mnt/nas rw - nfs4 nas:/export rw\n"
                b"31 22 0:41 / /home/dev/My\\040Drive rw - fuse.rclone gdrive: rw\n"
                b"32 22 0:42 / /tmp rw - tmpfs tmpfs rw\n"
            )
        },
        commands={"statvfs /": (b"4096 1000 500 400\n", 0)},
        live=True,
    )
    devices = parse_devices(dump)
    assert {d.name: d.class_ for d in devices} == {"nvme0n1": "nvme", "dm-0": "nvme"}
    mounts = {m.path: m for m in parse_mounts(dump, devices, [])}
    assert mounts["/"].class_ == "nvme" and mounts["/"].free_bytes == 4096 * 400
    assert mounts["/mnt/nas"].network and mounts["/mnt/nas"].free_bytes is None
    assert mounts["/home/dev/My Drive"].network and mounts["/home/dev/My Drive"].class_ == "network"
    assert mounts["/tmp"].class_ == "tmpfs"
    placed = place("/home/dev/My Drive/go/pkg/mod", list(mounts.values()))
    assert (
        placed is not None and placed.mount == "/home/dev/My Drive" and placed.class_ == "network"
    )
    assert place("/home/dev/.cache/go-build", list(mounts.values())).mount == "/"  # type: ignore[union-attr]


def test_nics_speed_null_when_down_and_numa_null_when_minus_one() -> None:
    net = "/sys/class/net"
    dump = _dump(
        {
            f"{net}/eth0/operstate": "up",
            f"{net}/eth0/speed": "10000",
            f"{net}/eth0/device/numa_node": "1",
            f"{net}/eth1/operstate": "down",
            f"{net}/eth1/speed": "-1",
            f"{net}/eth1/device/numa_node": "-1",
            f"{net}/lo/operstate": "unknown",
            f"{net}/lo/carrier": "1",
        },
        links={
            f"{net}/eth0": "../../devices/pci0000:00/0000:00:03.0/net/eth0",
            f"{net}/eth0/device/driver": "../../../bus/pci/drivers/ixgbe",
            f"{net}/eth1": "../../devices/pci0000:00/0000:00:04.0/net/eth1",
            f"{net}/lo": "../../devices/virtual/net/lo",
        },
    )
    nics = {n.name: n for n in parse_nics(dump)}
    assert (nics["eth0"].driver, nics["eth0"].speed_mbps, nics["eth0"].numa_node) == (
        "ixgbe",
        10000,
        1,
    )
    assert (nics["eth1"].up, nics["eth1"].speed_mbps, nics["eth1"].numa_node) == (False, None, None)
    assert nics["lo"].virtual and nics["lo"].up and not nics["eth0"].virtual


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ({"values": {"/proc/sys/kernel/osrelease": "5.15.167.4-microsoft-standard-WSL2"}}, "wsl2"),
        ({"values": {"/proc/sys/kernel/osrelease": "4.4.0-19041-Microsoft"}}, "wsl1"),
        ({"exists": {"/proc/sys/fs/binfmt_misc/WSLInterop"}}, "wsl2"),
        ({"files": {"/proc/1/environ": b"PATH=/bin\0container=podman\0"}}, "container:podman"),
        ({"exists": {"/.dockerenv"}}, "container:docker"),
        (
            {"files": {"/proc/self/cgroup": b"0::/system.slice/docker-abc.scope\n"}},
            "container:docker",
        ),
        (
            {
                "values": {
                    "/sys/class/dmi/id/sys_vendor": "QEMU",
                    "/sys/class/dmi/id/product_name": "Standard PC",
                }
            },
            "vm:qemu",
        ),
        (
            {
                "values": {
                    "/sys/class/dmi/id/sys_vendor": "Microsoft Corporation",
                    "/sys/class/dmi/id/product_name": "Virtual Machine",
                }
            },
            "vm:hyperv",
        ),
        ({"commands": {"detect-virt": (b"kvm\n", 0)}}, "vm:kvm"),
        ({"values": {"/sys/class/dmi/id/sys_vendor": "LENOVO"}}, "none"),
    ],
)
def test_virtualization(setup: dict[str, Any], expected: str) -> None:
    dump = _dump(setup.get("values"), **{k: v for k, v in setup.items() if k != "values"})
    assert virtualization(dump, []) == expected


def test_hypervisor_flag_alone_is_some_vm() -> None:
    assert virtualization(_dump(), ["hypervisor"]) == "vm:other"


def test_cgroup_limits_take_the_tightest_level() -> None:
    dump = _dump(
        {
            "/sys/fs/cgroup/user.slice/cpu.max": "200000 100000",
            "/sys/fs/cgroup/user.slice/app/cpu.max": "max 100000",
            "/sys/fs/cgroup/user.slice/memory.max": "8589934592",
            "/sys/fs/cgroup/user.slice/app/memory.max": "max",
        }
    )
    assert cgroup_limits(dump) == (2.0, 8 << 30)
    v1 = _dump(
        {
            "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1",
            "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712",
        }
    )
    assert cgroup_limits(v1) == (None, None)


def test_os_release_ids_follow_the_distro_package() -> None:
    text = 'NAME="Oracle Linux Server"\nID="ol"\nVERSION_ID="9.4"\n# comment\nBROKEN\n'
    release = parse_os_release(text)
    assert (distro_id(release), release["VERSION_ID"]) == ("oracle", "9.4")
    assert distro_id(parse_os_release("ID=opensuse-leap\n")) == "opensuse"
    assert distro_id(parse_os_release("ID='Linux Mint'\n")) == "linux_mint"
    assert distro_id(parse_os_release('ID="unterminated\n')) == "unterminated"


def test_os_release_id_like_lists_the_parents_closest_first() -> None:
    rocky = parse_os_release('ID="rocky"\nID_LIKE="rhel centos fedora"\n')
    assert (distro_id(rocky), distro_like(rocky)) == ("rocky", ["rhel", "centos", "fedora"])
    assert distro_like(parse_os_release("ID=linuxmint\nID_LIKE='Ubuntu  Debian'\n")) == [
        "ubuntu",
        "debian",
    ]
    assert distro_like(parse_os_release("ID=leapish\nID_LIKE=opensuse-leap\n")) == ["opensuse"]
    assert distro_like(parse_os_release("ID=debian\n")) == []


def test_go_env_and_go_defaults() -> None:
    out = (
        '{"GOCACHE": "/home/dev/.cache/go-build", "GOVERSION": "go1.27", "CGO_ENABLED": "1"}'
        "\n@@vars\nGO=/usr/bin/go\n"
    )
    go, env = parse_goenv(out)
    assert go is not None and go["GOVERSION"] == "go1.27" and env["GO"] == "/usr/bin/go"
    assert parse_goenv("\n@@vars\nGO=\nHOME=/home/dev\n") == (None, {"GO": "", "HOME": "/home/dev"})
    assert parse_goenv("not json\n@@vars\n")[0] is None
    assert default_gocache({"XDG_CACHE_HOME": "/xdg"}, "/home/dev") == "/xdg/go-build"
    assert default_gocache({}, "/home/dev") == "/home/dev/.cache/go-build"
    assert default_gomodcache({"GOPATH": "/gp:/other"}, "/home/dev") == "/gp/pkg/mod"
    assert default_gomodcache({}, "/home/dev") == "/home/dev/go/pkg/mod"


def test_memory_tiers_and_cxl_memory_only_node() -> None:
    node = "/sys/devices/system/node"
    tiers = "/sys/devices/virtual/memory_tiering"
    dump = _dump(
        {
            f"{node}/node0/cpulist": "0-3",
            f"{node}/node0/distance": "10 20",
            f"{node}/node1/cpulist": "",
            f"{node}/node1/distance": "20 10",
            f"{tiers}/memory_tier4/nodelist": "0",
            f"{tiers}/memory_tier22/nodelist": "1",
        },
        files={
            f"{node}/node0/meminfo": b"Node 0 MemTotal: 1048576 kB\n",
            f"{node}/node1/meminfo": b"Node 1 MemTotal: 2097152 kB\n",
        },
    )
    dump.exists.update({f"{node}/node0", f"{node}/node1"})
    numa = parse_numa(dump, [0, 1, 2, 3], None, [])
    assert [(n.id, n.cpus, n.memory_only, n.tier, n.distances) for n in numa.nodes] == [
        (0, [0, 1, 2, 3], False, 4, [10, 20]),
        (1, [], True, 22, [20, 10]),
    ]
    assert numa.nodes[1].memory_bytes == 2 << 30


def test_no_numa_in_the_kernel_is_one_node_with_everything() -> None:
    numa = parse_numa(_dump(), [0, 1], 8 << 30, [])
    assert numa.source == "none"
    assert [(n.id, n.cpus, n.memory_bytes) for n in numa.nodes] == [(0, [0, 1], 8 << 30)]
