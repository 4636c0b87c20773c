"""The planner's rules, from facts alone: where the Go caches go and why."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from gotune.facts.model import (
    BlockDevice,
    Facts,
    GoenvFile,
    Memory,
    Mount,
    PathPlacement,
    Platform,
    Storage,
    User,
    UserFacts,
)
from gotune.plan import Decision, Plan, make_plan
from gotune.plan.caches import MIN_TMPFS_BYTES, TMPFS_ROOT
from gotune.plan.goenv import goenv_path
from gotune.plan.model import TmpfsCache
from gotune.settings import validate_host_data
from tests.recorded import RecordedTrees

GIB = 1024**3


def mount(
    path: str,
    device: str,
    fstype: str,
    class_: str,
    free_gib: float | None = 100,
    options: list[str] | None = None,
    network: bool = False,
) -> Mount:
    free = None if free_gib is None else int(free_gib * GIB)
    return Mount(path, device, fstype, class_, free, free, network, options or ["rw"])


def machine(
    mounts: list[Mount],
    ram_gib: float | None = 32,
    home: str = "/home/dev",
    virt: str = "none",
    cgroup_gib: float | None = None,
    go: dict[str, str] | None = None,
    devices: list[BlockDevice] | None = None,
    goenv: dict[str, str] | None = None,
    user: str = "dev",
) -> Facts:
    """A machine with one developer user; ``goenv``: what their GOENV file holds."""
    f = Facts()
    f.memory = Memory(total_bytes=None if ram_gib is None else int(ram_gib * GIB))
    f.storage = Storage(devices=devices or [], mounts=mounts)
    f.platform = Platform(
        hostname="box",
        virtualization=virt,
        cgroup_memory_limit_bytes=(None if cgroup_gib is None else int(cgroup_gib * GIB)),
    )
    env = None if goenv is None else GoenvFile(f"{home}/.config/go/env", True, goenv)
    account = User(name=user, uid=1000, home=home, shell="/bin/bash")
    f.set_users({user: UserFacts(user=account, go=go, goenv=env)})
    return f


def plan_for(facts: Facts, **data: object) -> Plan:
    return make_plan(facts, validate_host_data(data, "box"))


def decision(plan: Plan, key: str, user: str = "dev") -> Decision:
    found = [d for d in plan.decisions if d.key == key and d.user == user]
    assert found, plan.to_dict()
    return found[0]


def tmpfs(plan: Plan, user: str = "dev") -> TmpfsCache:
    d = decision(plan, "GOCACHE", user)
    assert isinstance(d, TmpfsCache), d
    return d


def test_gomodcache_moves_from_hdd_home_to_nvme_with_room() -> None:
    f = machine(
        [mount("/", "/dev/sda1", "ext4", "hdd"), mount("/fast", "/dev/nvme0n1p1", "xfs", "nvme")]
    )
    d = decision(plan_for(f), "GOMODCACHE")
    assert d.change
    assert d.value == "/fast/gotune/dev/mod"
    assert d.medium == "nvme"
    assert "home is hdd" in d.reason
    assert d.current == "/home/dev/go/pkg/mod"


def test_home_already_on_the_fastest_storage_changes_nothing() -> None:
    f = machine(
        [mount("/", "/dev/nvme0n1p2", "ext4", "nvme"), mount("/data", "/dev/sda1", "ext4", "hdd")],
        ram_gib=8,
    )
    p = plan_for(f)
    for key in ("GOMODCACHE", "GOCACHE"):
        d = decision(p, key)
        assert not d.change
        assert "already on nvme" in d.reason
    assert decision(p, "GOCACHE").value == "/home/dev/.cache/go-build"


def test_root_filesystem_caches_go_to_a_gotune_directory_under_var_cache() -> None:
    f = machine(
        [mount("/", "/dev/nvme0n1p2", "ext4", "nvme"), mount("/home", "/dev/sda1", "ext4", "hdd")],
        ram_gib=8,
    )
    p = plan_for(f)
    assert decision(p, "GOMODCACHE").value == "/var/cache/gotune/users/dev/mod"
    assert decision(p, "GOCACHE").value == "/var/cache/gotune/users/dev/go-build"


def test_faster_disk_without_room_is_not_chosen() -> None:
    f = machine(
        [
            mount("/", "/dev/sda1", "ext4", "hdd"),
            mount("/fast", "/dev/nvme0n1p1", "xfs", "nvme", free_gib=3),
        ]
    )
    d = decision(plan_for(f, gotune_min_free_gib=10), "GOMODCACHE")
    assert not d.change
    assert d.value == "/home/dev/go/pkg/mod"


def test_network_9p_fuse_and_tmpfs_are_never_candidates() -> None:
    f = machine(
        [
            mount("/", "/dev/sda1", "ext4", "hdd"),
            mount("/nfs", "srv:/x", "nfs4", "network", free_gib=None, network=True),
            mount("/mnt/c", "C:\\", "9p", "network", network=True),
            mount("/fuse", "sshfs#a", "fuse.sshfs", "unknown"),
            mount("/ram", "tmpfs", "tmpfs", "tmpfs"),
            mount("/ro", "/dev/nvme0n1p3", "ext4", "nvme", options=["ro"]),
            mount("/usb", "/dev/sdb1", "ext4", "ssd"),
        ],
        devices=[BlockDevice("sdb", "ssd", removable=True)],
        ram_gib=8,
    )
    p = plan_for(f)
    assert not decision(p, "GOMODCACHE").change
    assert not decision(p, "GOCACHE").change


def test_wsl2_gomodcache_on_drvfs_moves_to_the_linux_home() -> None:
    f = machine(
        [
            mount("/", "/dev/sdc", "ext4", "virtual", free_gib=200),
            mount("/mnt/c", "C:\\", "9p", "network", free_gib=None, network=True),
        ],
        ram_gib=15.6,
        virt="wsl2",
        go={"GOMODCACHE": "/mnt/c/Users/dev/go/pkg/mod", "GOCACHE": "/home/dev/.cache/go-build"},
    )
    p = plan_for(f)
    d = decision(p, "GOMODCACHE")
    assert d.change
    assert d.value == "/home/dev/go/pkg/mod"
    assert "network filesystem (9p)" in d.reason
    assert not decision(p, "GOCACHE").change  # 15.6 GiB < 16 GiB: no tmpfs, home is fine


def test_nfs_home_puts_caches_on_local_disk() -> None:
    f = machine(
        [
            mount("/", "/dev/nvme0n1p2", "ext4", "nvme"),
            mount("/home", "srv:/home", "nfs4", "network", free_gib=None, network=True),
        ],
        ram_gib=8,
    )
    p = plan_for(f)
    assert decision(p, "GOMODCACHE").value == "/var/cache/gotune/users/dev/mod"
    assert decision(p, "GOCACHE").value == "/var/cache/gotune/users/dev/go-build"


def test_gocache_on_tmpfs_when_ram_allows_capped_by_quarter_and_max() -> None:
    f = machine([mount("/", "/dev/nvme0n1p2", "ext4", "nvme")], ram_gib=64)
    p = plan_for(f)
    d = tmpfs(p)
    assert d.medium == "tmpfs" and d.change
    assert d.value == f"{TMPFS_ROOT}/dev/go-build"
    assert d.size_bytes == 8 * GIB  # min(64/4, gotune_tmpfs_max_gib=8)
    assert d.snapshot == "/home/dev/.cache/gotune/go-build.tar"
    t = decision(p, "GOTMPDIR")
    assert t.value == f"{TMPFS_ROOT}/dev/tmp" and t.medium == "tmpfs"
    assert tmpfs(plan_for(f, gotune_tmpfs_max_gib=32)).size_bytes == 16 * GIB  # quarter of RAM


def test_gocache_stays_on_disk_below_the_ram_threshold() -> None:
    f = machine([mount("/", "/dev/nvme0n1p2", "ext4", "nvme")], ram_gib=8)
    p = plan_for(f)
    d = decision(p, "GOCACHE")
    assert d.medium == "nvme" and not d.change
    assert "gotune_tmpfs_min_ram_gib" in d.reason
    assert decision(p, "GOTMPDIR").value is None
    assert decision(plan_for(f, gotune_gocache_tmpfs="always"), "GOCACHE").medium == "tmpfs"
    assert decision(plan_for(f, gotune_tmpfs_min_ram_gib=4), "GOCACHE").medium == "tmpfs"


def test_cgroup_memory_limit_bounds_the_tmpfs() -> None:
    f = machine([mount("/", "/dev/nvme0n1p2", "ext4", "nvme")], ram_gib=256, cgroup_gib=24)
    d = tmpfs(plan_for(f, gotune_tmpfs_max_gib=64))
    assert d.size_bytes == 6 * GIB
    assert any("cgroup_memory_limit" in u for u in d.facts_used)
    small = machine([mount("/", "/dev/nvme0n1p2", "ext4", "nvme")], ram_gib=256, cgroup_gib=8)
    assert decision(plan_for(small), "GOCACHE").medium != "tmpfs"


def test_container_gets_no_tmpfs_unless_always_and_then_within_its_limit() -> None:
    f = machine(
        [mount("/", "overlay", "overlay", "unknown")],
        ram_gib=128,
        virt="container:docker",
        cgroup_gib=16,
    )
    d = decision(plan_for(f), "GOCACHE")
    assert d.medium != "tmpfs" and "container" in d.reason
    assert tmpfs(plan_for(f, gotune_gocache_tmpfs="always")).size_bytes == 4 * GIB


def test_never_means_never_and_tiny_tmpfs_is_refused() -> None:
    f = machine([mount("/", "/dev/nvme0n1p2", "ext4", "nvme")], ram_gib=64)
    assert decision(plan_for(f, gotune_gocache_tmpfs="never"), "GOCACHE").medium == "nvme"
    tiny = machine([mount("/", "/dev/nvme0n1p2", "ext4", "nvme")], ram_gib=3)
    d = decision(plan_for(tiny, gotune_gocache_tmpfs="always"), "GOCACHE")
    assert d.medium != "tmpfs" and MIN_TMPFS_BYTES > 3 * GIB // 4


def test_tmpfs_already_in_place_is_not_a_change() -> None:
    mp = f"{TMPFS_ROOT}/dev"
    f = machine(
        [mount("/", "/dev/nvme0n1p2", "ext4", "nvme"), mount(mp, "tmpfs", "tmpfs", "tmpfs", 8)],
        ram_gib=64,
        go={
            "GOCACHE": f"{mp}/go-build",
            "GOTMPDIR": f"{mp}/tmp",
            "GOMODCACHE": "/home/dev/go/pkg/mod",
        },
        goenv={"GOCACHE": f"{mp}/go-build", "GOTMPDIR": f"{mp}/tmp"},
    )
    f.users["dev"].paths["gocache"] = PathPlacement(
        f"{mp}/go-build", mp, "tmpfs", "tmpfs", "tmpfs"
    )
    p = plan_for(f)
    assert not any(d.change for d in p.decisions), p.to_dict()


def test_every_decision_names_its_facts_and_one_line_reason() -> None:
    f = machine(
        [mount("/", "/dev/sda1", "ext4", "hdd"), mount("/fast", "/dev/nvme0n1p1", "xfs", "nvme")],
        ram_gib=64,
    )
    for d in plan_for(f).decisions:
        assert d.reason and "\n" not in d.reason
        assert d.facts_used


def test_toolchain_install_is_planned_only_when_missing_or_different(tmp_path: Path) -> None:
    tarball = tmp_path / "go.tgz"
    tarball.write_bytes(b"x")
    data = {
        "gotune_go_version": "1.22.3",
        "gotune_go_tarball": str(tarball),
        "gotune_go_sha256": "0" * 64,
    }
    disks = [mount("/", "/dev/nvme0n1p2", "ext4", "nvme")]
    assert decision_go(machine(disks), data).change
    have = machine(disks, go={"GOVERSION": "go1.22.3", "GOROOT": "/usr/local/go-1.22.3"})
    assert not decision_go(have, data).change
    old = machine(disks, go={"GOVERSION": "go1.21.0", "GOROOT": "/usr/local/go-1.21.0"})
    assert "go1.21.0" in decision_go(old, data).reason
    assert not plan_for(old).toolchain.change  # no version set: left alone


def test_go_missing_warns_and_says_how_to_get_it() -> None:
    p = plan_for(machine([mount("/", "/dev/nvme0n1p2", "ext4", "nvme")]))
    (warning,) = [w for w in p.warnings if "no go found" in w]
    assert "gotune_go_version" in warning and "gotune_go_source = 'distro'" in warning


def decision_go(f: Facts, data: Mapping[str, object]) -> Decision:
    return make_plan(f, validate_host_data(data, "box")).toolchain


def test_plan_command_reads_a_facts_file_and_prints_the_contract(tmp_path: Path) -> None:
    f = machine(
        [mount("/", "/dev/sda1", "ext4", "hdd"), mount("/fast", "/dev/nvme0n1p1", "xfs", "nvme")],
        ram_gib=64,
    )
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(f.to_dict()))
    out = subprocess.run(
        [sys.executable, "-m", "gotune", "plan", "--facts", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    hosts = json.loads(out.stdout)["hosts"]
    (host,) = hosts.values()
    assert set(host) == {"decisions", "warnings"}
    for d in host["decisions"]:
        assert {"key", "value", "medium", "reason", "facts_used"} <= set(d)
    assert {d["key"] for d in host["decisions"]} >= {"go", "GOMODCACHE", "GOCACHE", "GOTMPDIR"}


def test_plan_from_facts_takes_settings_from_the_inventory_and_never_guesses_a_host(
    tmp_path: Path,
) -> None:
    f = machine([mount("/", "/dev/nvme0n1p2", "ext4", "nvme")], ram_gib=64)
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps({"hosts": {"laptop": {"facts": f.to_dict()}}}))
    never: dict[str, object] = {"gotune_users": ["gotune"], "gotune_gocache_tmpfs": "never"}

    def plan(hosts: list[tuple[str, dict[str, object]]]) -> subprocess.CompletedProcess[str]:
        inventory = tmp_path / "inventory.py"
        inventory.write_text(f"hosts = {hosts!r}\n")
        return subprocess.run([sys.executable, "-m", "gotune", "plan", str(inventory),
                               "--facts", str(facts), "--json"],
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    # One host, another name (facts recorded on this laptop, planned for @local): its data.
    alone = plan([("@local", never)])
    assert alone.returncode == 0, alone.stderr
    gocache = next(d for d in json.loads(alone.stdout)["hosts"]["laptop"]["decisions"]
                   if d["key"] == "GOCACHE")
    assert gocache["medium"] != "tmpfs" and "never" in gocache["reason"], gocache
    # Two hosts, neither of them the facts': refused, naming both.
    two = plan([("a.example", never), ("b.example", {})])
    assert two.returncode == 1
    assert "host laptop is not in the inventory (it holds a.example, b.example)" in json.loads(
        two.stdout)["error"]
    # A fleet's facts against a one-host inventory: that host's settings are no one else's.
    facts.write_text(json.dumps({"hosts": {"laptop": {"facts": f.to_dict()},
                                           "ci-1": {"facts": f.to_dict()}}}))
    fleet = plan([("@local", never)])
    assert fleet.returncode == 1
    assert "host laptop is not in the inventory (it holds @local)" in json.loads(
        fleet.stdout)["error"]


def test_plan_command_refuses_a_broken_facts_file(tmp_path: Path) -> None:
    path = tmp_path / "facts.json"
    path.write_text("{not json")
    out = subprocess.run(
        [sys.executable, "-m", "gotune", "plan", "--facts", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert out.stderr.startswith("gotune: facts") and out.stderr.count("\n") == 1


# --- recorded machines (tests/fixtures/hwloc), parsed by the facts collector ------------------

@pytest.fixture
def recorded(recorded_trees: RecordedTrees) -> Callable[[str], Facts]:
    def load(name: str) -> Facts:
        facts = recorded_trees.facts(name)
        account = User(name="dev", uid=1000, home="/home/dev", shell="/bin/bash")
        facts.set_users({"dev": UserFacts(user=account)})
        return facts

    return load


def test_hybrid_laptop_gets_a_tmpfs_gocache(recorded: Callable[[str], Facts]) -> None:
    f = recorded("20em64t-hybrid-1p6c2t+2ca4co1t")
    p = plan_for(f)
    d = tmpfs(p)
    ram = f.memory.total_bytes
    assert ram is not None and ram > 16 * GIB
    assert d.size_bytes <= min(ram // 4, 8 * GIB)
    assert not decision(p, "GOMODCACHE").change  # home on / is the only local disk


def test_four_node_server_plan_is_made_from_its_recording(recorded: Callable[[str], Facts]) -> None:
    f = recorded("64fake-4n2s2ca2c2t")
    assert len(f.numa.nodes) == 4
    p = plan_for(f)
    assert decision(p, "GOMODCACHE").reason
    d = decision(p, "GOCACHE")
    ram = f.memory.total_bytes or 0
    assert (d.medium == "tmpfs") == (ram >= 16 * GIB)


def test_snapshot_lives_beside_the_moved_module_cache_on_every_apply() -> None:
    disks = [
        mount("/", "/dev/sda1", "ext4", "hdd"),
        mount("/fast", "/dev/nvme0n1p1", "xfs", "nvme"),
    ]
    first = plan_for(machine(disks, ram_gib=64))
    assert tmpfs(first).snapshot == "/fast/gotune/dev/go-build.tar"
    # The next apply sees the caches where the first one put them: same snapshot, no change.
    mp = f"{TMPFS_ROOT}/dev"
    again = machine(
        [*disks, mount(mp, "tmpfs", "tmpfs", "tmpfs", 8)],
        ram_gib=64,
        go={
            "GOMODCACHE": "/fast/gotune/dev/mod",
            "GOCACHE": f"{mp}/go-build",
            "GOTMPDIR": f"{mp}/tmp",
        },
        goenv={"GOMODCACHE": "/fast/gotune/dev/mod", "GOCACHE": f"{mp}/go-build",
               "GOTMPDIR": f"{mp}/tmp"},
    )
    second = plan_for(again)
    assert tmpfs(second).snapshot == "/fast/gotune/dev/go-build.tar"
    assert not any(d.change for d in second.decisions if d.user), second.to_dict()


def test_a_user_named_gotune_keeps_caches_in_home() -> None:
    f = machine(
        [mount("/", "/dev/nvme0n1p2", "ext4", "nvme")], ram_gib=64, home="/home/gotune",
        user="gotune",
    )
    p = make_plan(f, validate_host_data({}, "box"))
    assert tmpfs(p, "gotune").snapshot == "/home/gotune/.cache/gotune/go-build.tar"


def test_plan_cli_moves_a_wsl2_gomodcache_off_mnt_c() -> None:
    doc = Path(__file__).parent / "fixtures" / "facts" / "wsl2-gomodcache-on-mnt-c.json"
    out = subprocess.run(
        [sys.executable, "-m", "gotune", "plan", "--facts", str(doc), "--json"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    (host,) = json.loads(out.stdout)["hosts"].values()
    by_key = {d["key"]: d for d in host["decisions"]}
    assert by_key["GOMODCACHE"]["change"]
    assert by_key["GOMODCACHE"]["value"] == "/home/dev/go/pkg/mod"
    assert "9p" in by_key["GOMODCACHE"]["reason"]


def test_home_on_tmpfs_keeps_a_plain_decision_apply_can_carry_out() -> None:
    # The first landing crashed here: a kept GOCACHE whose medium was "tmpfs" was read
    # as gotune's tmpfs (KeyError: 'mountpoint'). Now only a TmpfsCache has one.
    f = machine(
        [mount("/", "/dev/nvme0n1p2", "ext4", "nvme", free_gib=5),
         mount("/home", "tmpfs", "tmpfs", "tmpfs", free_gib=4)],
        ram_gib=8,
    )
    p = plan_for(f)
    gocache = decision(p, "GOCACHE")
    assert not isinstance(gocache, TmpfsCache)
    assert gocache.medium == "tmpfs" and not gocache.change
    assert "lost at reboot" in gocache.reason
    assert "mountpoint" not in gocache.details()
    again = Plan.from_dict(json.loads(json.dumps(p.to_dict())))
    assert again.to_dict() == p.to_dict()


def test_a_stored_plan_reads_back_into_the_same_types() -> None:
    disks = [
        mount("/", "/dev/sda1", "ext4", "hdd"), mount("/fast", "/dev/nvme0n1p1", "xfs", "nvme")
    ]
    p = plan_for(machine(disks, ram_gib=64), gotune_mirror_enabled=True, gotune_wear_enabled=True)
    again = Plan.from_dict(json.loads(json.dumps(p.to_dict())))
    assert again == p
    assert isinstance(again.caches["dev"].gocache, TmpfsCache)
    with pytest.raises(ValueError, match="unknown decision kind"):
        Plan.from_dict({"decisions": [{"key": "go", "kind": "rocket"}]})


def test_goenv_path_follows_go_env_and_off() -> None:
    home = machine([mount("/", "/dev/nvme0n1p2", "ext4", "nvme")]).users["dev"]
    assert goenv_path(home) == "/home/dev/.config/go/env"
    home.go = {"GOENV": "/cfg/env"}
    assert goenv_path(home) == "/cfg/env"
    home.go = {"GOENV": "off"}
    assert goenv_path(home) is None


def test_goenv_writes_only_what_differs_and_says_so() -> None:
    disks = [
        mount("/", "/dev/sda1", "ext4", "hdd"), mount("/fast", "/dev/nvme0n1p1", "xfs", "nvme")
    ]
    first = plan_for(machine(disks, ram_gib=8))
    goenv = first.goenv["dev"]
    assert goenv.change and goenv.values == {
        "GOMODCACHE": "/fast/gotune/dev/mod", "GOCACHE": "/fast/gotune/dev/go-build"}
    done = machine(disks, ram_gib=8, goenv={k: str(v) for k, v in goenv.values.items()},
                   go={"GOMODCACHE": "/fast/gotune/dev/mod",
                       "GOCACHE": "/fast/gotune/dev/go-build"})
    assert "dev" not in plan_for(done).goenv  # nothing moves: nothing to write


@pytest.mark.parametrize(("go", "words"), [
    # A newline would start a line of its own in the snapshot unit or crontab root runs.
    ({"GOMODCACHE": "/x\n* * * * * root id\n#/gotune/dev/mod"}, ["GOMODCACHE", "control"]),
    ({"GOCACHE": "/home/dev/../../etc"}, ["GOCACHE", "'..'"]),
    ({"GOTMPDIR": "tmp"}, ["GOTMPDIR", "not an absolute path"]),
    ({"GOCACHE": "/home/dev/a\\x2db"}, ["GOCACHE", "backslash"]),
    # Root writes the GOENV file: never outside the user's home (say, /etc/shadow).
    ({"GOENV": "/etc/shadow"}, ["GOENV", "outside /home/dev"]),
])  # fmt: skip
def test_paths_the_user_chose_that_root_must_not_act_on_leave_their_caches_alone(
    go: dict[str, str], words: list[str]
) -> None:
    disks = [mount("/", "/dev/sda1", "ext4", "hdd"),
             mount("/fast", "/dev/nvme0n1p1", "xfs", "nvme")]
    plan = plan_for(machine(disks, go=go))
    assert "dev" not in plan.caches and "dev" not in plan.goenv
    (warning,) = [w for w in plan.warnings if "alone" in w and "toolchain" not in w]
    assert all(w in warning for w in words) and "leaves dev's caches and GOENV alone" in warning
    # The same machine with plain paths moves the caches.
    assert plan_for(machine(disks, go={"GOENV": "/home/dev/.config/go/env"})).caches["dev"]
