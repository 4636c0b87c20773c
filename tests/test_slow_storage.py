"""Slow storage on sandbox hosts: what gotune's facts see, and that it really is slow.

- ``slow9p`` at /mnt/c looks like WSL2's: ``fuse.9p`` from ``C:\\``, a network
  filesystem to the facts; each metadata operation pays its latency; go's
  module download works on it (the passthrough's pitfalls are covered).
- ``hdd`` at /home is a rotational SATA disk to the facts (class ``hdd``), and
  with a cold cache each read waits for the throttled device.

Figures for go builds (no-op and incremental, each profile and latency) come
from ``bench/slow_storage.py``; here only the direction is asserted, with wide
margins, since other test runs share this machine.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SandboxFactory
from tests.goproxy_tree import APP_GOMOD, APP_MAIN, StaticUpstream, build_tree, standard_modules
from tests.sandbox import SandboxHost
from tests.sandbox_storage import Hdd, Slow9p
from tests.test_verify_runner import warm_cache

__all__ = ["warm_cache"]  # the session fixture, shared with the verify tests

pytestmark = [pytest.mark.sandbox, pytest.mark.slowstorage, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
USER = "dev"
# 2 ms per operation: 200 stats cost at least 0.4 s, far above ext4's microseconds.
LATENCY_MS = 2.0
STATS = 200
# Small files read cold: each costs at least one throttled read (and its inode block).
FILES = 240


def facts(inventory: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "gotune", "facts", str(inventory), "--json"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)  # fmt: skip
    assert out.returncode == 0, out.stderr
    found: dict[str, Any] = json.loads(out.stdout)["hosts"]["sbx1"]
    return found


def sh(host: SandboxHost, cmd: str, user: str = "root") -> str:
    out = host.run(cmd, user=user, timeout=180)
    assert out.returncode == 0, f"{cmd}: {out.stdout[-1500:]} {out.stderr[-1500:]}"
    return out.stdout


def seconds(host: SandboxHost, cmd: str, user: str = "root") -> float:
    """Wall time of ``cmd`` on the host, measured there (ssh's own cost left out)."""
    timed = f"s=$(date +%s%N); {cmd} >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000 ))"
    out = sh(host, timed, user=user)
    return int(out.strip().splitlines()[-1]) / 1e6


def test_slow9p_is_wsl2s_mnt_c_to_facts_and_every_metadata_operation_pays_its_latency(
    sandbox: SandboxFactory, tmp_path: Path
) -> None:
    host = sandbox(1, storage=[Slow9p(latency_ms=LATENCY_MS)]).hosts[0]
    host.add_user(USER)
    host.link_go()
    assert sh(host, "findmnt -n -o FSTYPE,SOURCE /mnt/c").split() == ["fuse.9p", "C:\\"]
    mnt = next(m for m in facts(host_inventory(host))["storage"]["mounts"] if m["path"] == "/mnt/c")
    assert mnt["fstype"] == "fuse.9p" and mnt["network"] is True and mnt["class"] == "network"

    sh(host, "mkdir -p /mnt/c/Users/dev && touch /mnt/c/Users/dev/probe", user=USER)
    assert sh(host, "stat -c %U /mnt/c/Users/dev/probe") == "dev\n"
    stat_loop = f"for i in $(seq {STATS}); do stat /mnt/c/Users/dev/probe; done"
    slow = seconds(host, stat_loop)
    assert slow >= STATS * LATENCY_MS / 1000
    assert seconds(host, stat_loop.replace("/mnt/c/Users/dev/probe", "/etc/hostname")) < slow / 2

    # go mod download with GOMODCACHE there: files it creates are read back through the
    # handle that created them, and extracted zips are read-only trees.
    tree = build_tree(tmp_path / "upstream", standard_modules(big_bytes=64 << 10))
    with StaticUpstream(tree) as up:
        env = (f"GOMODCACHE=/mnt/c/Users/dev/go/pkg/mod GOPROXY={up.url} GOSUMDB=off "
               "GOFLAGS=-mod=mod GOTOOLCHAIN=local")  # fmt: skip
        sh(host, f"mkdir -p ~/app && cd ~/app && printf %s {shlex.quote(APP_GOMOD)} > go.mod && "
                 f"printf %s {shlex.quote(APP_MAIN)} > main.go && {env} go mod download && "
                 f"{env} go list -deps . | grep -c example.com",
           user=USER)  # fmt: skip


def host_inventory(host: SandboxHost) -> Path:
    return host.key.parent / "inventory.py"


def test_hdd_is_a_rotational_disk_to_facts_and_cold_reads_wait_for_its_iops(
    sandbox: SandboxFactory,
) -> None:
    host = sandbox(1, systemd=True, storage=[Hdd(path="/home")]).hosts[0]
    host.add_user(USER)
    assert host.prepared is not None
    disk = host.prepared.disks[0]
    found = facts(host_inventory(host))
    device = next(d for d in found["storage"]["devices"] if d["name"] == disk.name)
    assert device["class"] == "hdd" and device["rotational"] is True
    home = next(m for m in found["storage"]["mounts"] if m["path"] == "/home")
    assert home["fstype"] == "ext4" and home["class"] == "hdd"
    # gotune verify follows /sys/dev/block/MAJ:MIN: the same answer there.
    assert sh(host, f"cat /sys/dev/block/{disk.majmin}/queue/rotational") == "1\n"

    sh(host, f"mkdir -p /home/dev/files && cd /home/dev/files && for i in $(seq {FILES}); do "
             "head -c 4096 /dev/urandom > f$i; done")  # fmt: skip
    read_all = "cat /home/dev/files/*"
    host.cold_caches()
    cold = seconds(host, read_all)
    warm = seconds(host, read_all)
    # 240 files at 120 reads a second: 2 s at least (inode blocks come on top).
    assert cold >= FILES / disk.spec.read_iops * 0.8, (cold, warm)
    assert warm < cold / 4, (cold, warm)
    # The remount is clean: the disk is mounted once, by the unit that mounts it at boot.
    assert sh(host, "findmnt -n -o SOURCE /home") == f"/dev/{disk.name}\n"


# --- verify before and after apply ----------------------------------------------------------


def gotune_json(*args: str) -> tuple[int, dict[str, Any]]:
    out = subprocess.run([sys.executable, "-m", "gotune", *args, "--json"], capture_output=True,
                         text=True, timeout=900, cwd=REPO)  # fmt: skip
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, json.loads(out.stdout)


def verify(host: SandboxHost) -> dict[str, Any]:
    """One verify of the host's developer: the repeat build, tuned against Go's defaults."""
    _code, result = gotune_json("verify", str(host_inventory(host)), "--bench", "repeat build",
                                "--runs", "3")  # fmt: skip
    found: dict[str, Any] = result["hosts"]["sbx1"]
    return found


def check_detail(result: dict[str, Any], name: str) -> tuple[bool, str]:
    found = next(c for c in result["checks"] if c["name"] == name)
    return bool(found["ok"]), str(found["detail"])


def seed_verify_caches(host: SandboxHost, warm: Path, caches: list[str],
                       timeout: float = 120) -> None:
    """A standard library built before (see tests/test_verify_runner.warm_cache), copied
    in over ssh as the developer (a systemd host does not see this machine's files; a
    cache on a slow9p /mnt/c is written through its FUSE daemon like any other file)."""
    tarball = subprocess.run(["tar", "-C", str(warm), "-cf", "-", "."], capture_output=True,
                             check=True).stdout  # fmt: skip
    for cache in caches:
        q = shlex.quote(cache)
        argv = [*host.ssh_argv(USER), f"mkdir -p {q} && tar -C {q} -xf -"]
        out = subprocess.run(argv, input=tarball, capture_output=True, timeout=timeout,
                             check=False)  # fmt: skip
        assert out.returncode == 0, out.stderr


def modules_on_mnt_c(host: SandboxHost, tmp_path: Path, big_bytes: int) -> str:
    """The developer with Go, GOMODCACHE on the 9p /mnt/c (WSL2's classic) and an app
    in ~/app whose modules are downloaded there; the GOMODCACHE."""
    host.add_user(USER)
    host.link_go()
    gomodcache = "/mnt/c/Users/dev/go/pkg/mod"
    tree = build_tree(tmp_path / "upstream", standard_modules(big_bytes=big_bytes))
    with StaticUpstream(tree) as up:
        goenv = f"GOMODCACHE={gomodcache}\nGOPROXY={up.url}\nGOSUMDB=off\nGOFLAGS=-mod=mod\n"
        sh(host, f"mkdir -p ~/.config/go {gomodcache} && printf %s {shlex.quote(goenv)} > "
                 f"~/.config/go/env && mkdir ~/app && cd ~/app && printf %s "
                 f"{shlex.quote(APP_GOMOD)} > go.mod && printf %s {shlex.quote(APP_MAIN)} > main.go"
                 " && go mod download", user=USER)  # fmt: skip
    return gomodcache


def test_gomodcache_on_slow9p_fails_verify_until_apply_moves_it_home(
    sandbox: SandboxFactory, tmp_path: Path, warm_cache: Path
) -> None:
    data = {"gotune_users": [USER], "gotune_gocache_tmpfs": "never"}
    host = sandbox(1, data=[data], storage=[Slow9p(latency_ms=0.5)]).hosts[0]
    gomodcache = modules_on_mnt_c(host, tmp_path, big_bytes=64 << 10)
    seed_verify_caches(
        host,
        warm_cache,
        [
            "/home/dev/.cache/go-build/gotune-verify-tuned",
            "/home/dev/.cache/go-build/gotune-verify-default",
            # after apply, the setup of before (GOMODCACHE on /mnt/c) is measured too
            "/home/dev/.cache/go-build/gotune-verify-before",
        ],
    )

    before = verify(host)
    ok, detail = check_detail(before, "dev: GOMODCACHE filesystem")
    assert not ok and "fuse.9p at /mnt/c" in detail and before["verdict"] == "fail"

    code, applied = gotune_json("apply", str(host_inventory(host)), "--yes", "--no-verify")
    assert code == 0, applied
    plan = {d["key"]: d for d in applied["hosts"]["sbx1"]["plan"]["decisions"]}
    assert plan["GOMODCACHE"]["current"] == gomodcache and plan["GOMODCACHE"]["change"]
    moved = plan["GOMODCACHE"]["value"]
    assert not moved.startswith("/mnt/c")
    # The moved cache is complete: the app builds from it with no proxy at all.
    sh(host, "cd ~/app && GOPROXY=off go build -o /dev/null .", user=USER)

    after = verify(host)
    ok, detail = check_detail(after, "dev: GOMODCACHE filesystem")
    assert ok, detail
    (bench,) = after["benchmarks"]
    assert bench["tuned"]["runs"] == bench["default"]["runs"] == 3


# Stand-in for a package tool that cannot reach its mirror (the host's network is this
# machine's, which can): what makes a later component of apply fail.
FAILING_APT = "#!/bin/sh\necho 'E: Failed to fetch: network unreachable' >&2\nexit 100\n"


def test_an_apply_that_fails_after_moving_the_module_cache_leaves_go_pointing_at_it(
    sandbox: SandboxFactory, tmp_path: Path
) -> None:
    """The module cache moves home first; then the wear check's smartmontools cannot
    be installed and apply fails. Go must still find its modules (offline: a build
    that downloads nothing), and a second apply, once apt works, finishes the job."""
    data = {"gotune_users": [USER], "gotune_gocache_tmpfs": "never",
            "gotune_wear_enabled": True, "gotune_wear_install_smartmontools": True}
    host = sandbox(1, data=[data], storage=[Slow9p(latency_ms=0.1)]).hosts[0]
    gomodcache = modules_on_mnt_c(host, tmp_path, big_bytes=16 << 10)
    sh(host, "DEBIAN_FRONTEND=noninteractive dpkg --purge smartmontools && "
             f"printf %s {shlex.quote(FAILING_APT)} > /usr/local/sbin/apt-get && "
             "chmod 755 /usr/local/sbin/apt-get")  # fmt: skip

    code, failed = gotune_json("apply", str(host_inventory(host)), "--yes", "--no-verify")
    assert code == 1 and not failed["hosts"]["sbx1"]["ok"], failed
    assert "network unreachable" in json.dumps(failed["hosts"]["sbx1"])
    moved = sh(host, "go env GOMODCACHE", user=USER).strip()
    assert not moved.startswith("/mnt/c")
    assert sh(host, f"ls -A {gomodcache} 2>/dev/null; :", user=USER) == ""  # moved away
    sh(host, "cd ~/app && GOPROXY=off go build -o /dev/null .", user=USER)
    # The install failed: no record that would make undo remove what someone installs later.
    assert sh(host, "ls /var/lib/gotune/undo/packages 2>/dev/null; :") == ""

    sh(host, "rm /usr/local/sbin/apt-get")
    code, applied = gotune_json("apply", str(host_inventory(host)), "--yes", "--no-verify")
    assert code == 0 and applied["hosts"]["sbx1"]["ok"], applied
    assert sh(host, "go env GOMODCACHE", user=USER).strip() == moved


def test_verify_on_an_hdd_home_before_and_after_apply_reports_both_placements(
    sandbox: SandboxFactory, warm_cache: Path
) -> None:
    """GOCACHE leaves the HDD for a tmpfs. verify's builds are warm (the page cache
    hides the disk), so here it only reports; the cold figures are the benchmark's."""
    data = {"gotune_users": [USER], "gotune_gocache_tmpfs": "always", "gotune_tmpfs_max_gib": 1}
    host = sandbox(1, data=[data], systemd=True, storage=[Hdd(path="/home")]).hosts[0]
    host.add_user(USER)
    host.link_go()
    seed_verify_caches(
        host,
        warm_cache,
        [
            "/home/dev/.cache/go-build/gotune-verify-tuned",
            "/home/dev/.cache/go-build/gotune-verify-default",
        ],
    )
    # Before apply there is no stored plan: verify compares with the GOENV file and
    # reports where GOCACHE is (the HDD); after apply it checks the plan's tmpfs.
    before = verify(host)
    assert before["expected_from"] == "GOENV file"
    ok, detail = check_detail(before, "dev: GOCACHE filesystem")
    assert "ext4 at /home" in detail, detail

    code, applied = gotune_json("apply", str(host_inventory(host)), "--yes", "--no-verify")
    assert code == 0, applied
    gocache = next(d for d in applied["hosts"]["sbx1"]["plan"]["decisions"]
                   if d["key"] == "GOCACHE")  # fmt: skip
    assert gocache["medium"] == "tmpfs"
    seed_verify_caches(host, warm_cache, [f"{gocache['value']}/gotune-verify-tuned"])
    host.cold_caches()
    after = verify(host)
    ok, detail = check_detail(after, "dev: GOCACHE filesystem")
    assert ok and "tmpfs" in detail, detail
    (bench,) = after["benchmarks"]
    print(
        f"verify on hdd, repeat build: tuned {bench['tuned']['median_s']} s, "
        f"default {bench['default']['median_s']} s, ratio {bench['ratio']}, {bench['verdict']}"
    )
