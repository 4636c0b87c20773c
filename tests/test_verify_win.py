"""Did my builds get faster? verify against the user's own setup before gotune, end to end.

Sandbox hosts with a real Go and real slow storage (tests/sandbox_storage.py): apply
records each developer's setup first (the baseline), then verify times ``tuned`` (now),
``before`` (the baseline environment, measured again side by side) and Go's ``default``,
on the seed's benchmarks, a generated service and the user's own projects, and says why
a difference is or is not there.

The ≥ 5x figures of the issue are bench/verify_win.py's (full-size service, more runs);
here the service is small (``PACKAGES``) and the assertions are on the shape of the
report and a conservative ratio where the slowdown is large. The variants' verify caches
are seeded with a warm standard library (tests/test_verify_runner.warm_cache).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gotune.agent.stats import benchmark_ok
from gotune.agent.verify.bench import GENERATED
from tests.conftest import SandboxFactory
from tests.goproxy_tree import APP_GOMOD, APP_MAIN, StaticUpstream, build_tree, standard_modules
from tests.sandbox import SandboxHost
from tests.sandbox_storage import Hdd, Slow9p
from tests.test_slow_storage import seed_verify_caches
from tests.test_verify_runner import warm_cache

__all__ = ["warm_cache"]  # the session fixture, shared with the runner tests

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
USER = "dev"
BASELINE = "/var/lib/gotune/verify/baseline.json"
# A small service: enough packages for every cache entry to count, quick to compile.
PACKAGES = "16"
# Five runs per variant: fewer never give a verdict (gotune/agent/stats.py).
RUNS = "5"
# Where WSL2 keeps a Windows user's files; the developer's Go caches start out there.
MNT_C_HOME = "/mnt/c/Users/dev"
# 9p's round trip at the fast end of WSL2's 0.1-1 ms: large enough a slowdown, quick to run.
LATENCY_MS = 0.2
# A conservative ratio for a large slowdown (bench/verify_win.py measures the real one).
CLEAR_WIN = 2.0


def sh(host: SandboxHost, cmd: str, user: str = "root") -> str:
    out = host.run(cmd, user=user, timeout=600)
    assert out.returncode == 0, f"{cmd}: {out.stdout[-1500:]} {out.stderr[-1500:]}"
    return out.stdout


def gotune_json(*args: str) -> tuple[int, dict[str, Any]]:
    out = subprocess.run([sys.executable, "-m", "gotune", *args, "--json"], capture_output=True,
                         text=True, timeout=1800, cwd=REPO)  # fmt: skip
    assert "Traceback" not in out.stderr, out.stderr
    try:
        return out.returncode, json.loads(out.stdout)
    except ValueError:
        raise AssertionError(f"no JSON: {out.stderr[-2000:]}") from None


def apply(host: SandboxHost) -> dict[str, Any]:
    code, applied = gotune_json("apply", str(host.key.parent / "inventory.py"), "--yes",
                                "--no-verify")
    assert code == 0, applied
    found: dict[str, Any] = applied["hosts"][host.name]
    return found


def verify(host: SandboxHost, *flags: str) -> dict[str, Any]:
    _code, result = gotune_json("verify", str(host.key.parent / "inventory.py"),
                                "--workload-packages", PACKAGES, *flags)
    found: dict[str, Any] = result["hosts"][host.name]
    found["_top"] = {k: v for k, v in result.items() if k != "hosts"}
    return found


def seed(host: SandboxHost, warm: Path, caches: list[str]) -> None:
    seed_verify_caches(host, warm, caches, timeout=600)


def bench_named(host: dict[str, Any], name: str) -> dict[str, Any]:
    return next(b for b in host["benchmarks"] if b["name"] == name)


@pytest.mark.slowstorage
def test_caches_on_9p_mnt_c_before_apply_are_measured_again_and_the_win_is_explained(
    sandbox: SandboxFactory, warm_cache: Path
) -> None:
    """WSL2's classic: GOCACHE and GOMODCACHE under /mnt/c. apply records that, moves them
    home; verify builds in the old place again, side by side, and shows the win."""
    data = {"gotune_users": [USER], "gotune_gocache_tmpfs": "never"}
    host = sandbox(1, data=[data], storage=[Slow9p(latency_ms=LATENCY_MS)]).hosts[0]
    host.add_user(USER)
    host.link_go()
    goenv = (f"GOCACHE={MNT_C_HOME}/AppData/go-build\nGOMODCACHE={MNT_C_HOME}/go/pkg/mod\n"
             "GOTOOLCHAIN=local\n")
    sh(host, f"mkdir -p {MNT_C_HOME}/AppData/go-build {MNT_C_HOME}/go/pkg/mod ~/.config/go && "
             f"printf %s {shlex.quote(goenv)} > ~/.config/go/env", user=USER)  # fmt: skip

    applied = apply(host)
    plan = {d["key"]: d for d in applied["plan"]["decisions"]}
    assert plan["GOCACHE"]["change"] and not plan["GOCACHE"]["value"].startswith("/mnt/c")
    recorded = json.loads(sh(host, f"cat {BASELINE}"))["users"][USER]
    assert recorded["env"]["GOCACHE"] == f"{MNT_C_HOME}/AppData/go-build"
    assert recorded["places"]["GOCACHE"]["fstype"] == "fuse.9p"
    assert recorded["places"]["GOCACHE"]["class"] == "network"

    # The old caches are gone (moved home): before's verify caches go beside where they
    # were, on the same 9p mount, never re-creating the moved directories.
    seed(host, warm_cache, [f"{plan['GOCACHE']['value']}/gotune-verify-tuned",
                            "/home/dev/.cache/go-build/gotune-verify-default",
                            f"{MNT_C_HOME}/AppData/gotune-verify-before-gocache"])
    h = verify(host, "--bench", f"repeat build,{GENERATED}", "--runs", RUNS)
    assert sh(host, f"test ! -e {MNT_C_HOME}/AppData/go-build && echo gone") == "gone\n"

    before = h["variants"]["before"]
    assert before["places"]["GOCACHE"]["fstype"] == "fuse.9p", before
    assert before["places"]["GOMODCACHE"]["fstype"] == "fuse.9p"
    assert "fuse.9p" in before["summary"] and not before.get("same_as")

    service = bench_named(h, GENERATED)
    for key in ("tuned", "default", "ratio", "verdict", "before", "headline_ratio"):
        assert key in service, key  # every key of before, and the new ones
    assert service["verdicts"]["before"] == "faster", service
    assert service["headline_ratio"] >= CLEAR_WIN, service
    assert "fuse.9p" in service["explanation"] and "faster" in service["explanation"]

    repeat = bench_named(h, "repeat build")
    # 0.3 s is out of reach on 9p; whether tuned meets it on a machine shared with other
    # test runs is bench/verify_win.py's to measure, not a test's to time.
    assert repeat["targets_met"]["before"] is False, repeat
    assert repeat["verdicts"]["before"] == "faster", repeat
    assert h["headline"]["against"] == "before" and h["headline"]["ratio"] >= CLEAR_WIN
    assert [c for c in h["checks"] if not c["ok"]] == []
    print(f"9p: {service['explanation']}; repeat build before "
          f"{repeat['before']['median_s']} s, tuned {repeat['tuned']['median_s']} s")


@pytest.mark.slowstorage
def test_cold_page_cache_on_an_hdd_home_shows_what_a_tmpfs_gocache_saves(
    sandbox: SandboxFactory, warm_cache: Path
) -> None:
    """The morning after a reboot: with the page cache dropped before every run, GOCACHE on
    the HDD home costs a seek per entry; on the tmpfs gotune restores at boot it does not.
    The user's setup before was Go's default: one environment, measured once."""
    data = {"gotune_users": [USER], "gotune_gocache_tmpfs": "always", "gotune_tmpfs_max_gib": 1}
    host = sandbox(1, data=[data], storage=[Hdd(path="/home")]).hosts[0]
    host.add_user(USER)
    host.link_go()
    plan = {d["key"]: d for d in apply(host)["plan"]["decisions"]}
    assert plan["GOCACHE"]["medium"] == "tmpfs"
    seed(host, warm_cache, [f"{plan['GOCACHE']['value']}/gotune-verify-tuned",
                            "/home/dev/.cache/go-build/gotune-verify-default"])

    h = verify(host, "--bench", GENERATED, "--runs", RUNS, "--cold")
    assert h["_top"]["cold"] is True and h["cold"] is True
    assert h["variants"]["before"]["same_as"] == "default"
    service = bench_named(h, GENERATED)
    assert service["cold"] is True
    assert service["before"] == service["default"]  # measured once
    assert service["headline_ratio"] == service["ratio"] >= CLEAR_WIN, service
    text = service["explanation"]
    assert "cold page cache" in text and "tmpfs" in text and "hdd" in text, text
    print(f"hdd cold: {text}")


def test_fast_disk_says_why_there_is_no_win_and_projects_report_their_own_errors(
    sandbox: SandboxFactory, warm_cache: Path, tmp_path: Path
) -> None:
    """On this machine's disk a tmpfs GOCACHE cannot change much with a warm page cache,
    and the report says so. The user's projects build as they would; a directory that is
    not a module, one that does not build and one of another user each get their own
    error, and the rest of the report stands."""
    data = {"gotune_users": [USER], "gotune_gocache_tmpfs": "always", "gotune_tmpfs_max_gib": 1}
    host = sandbox(1, data=[data]).hosts[0]
    host.add_user(USER)
    host.add_user("bob")
    host.link_go()
    tree = build_tree(tmp_path / "upstream", standard_modules(big_bytes=16 << 10))
    with StaticUpstream(tree) as up:  # the user's own module cache has the app's modules
        env = f"GOPROXY={up.url} GOSUMDB=off GOFLAGS=-mod=mod"
        sh(host, f"mkdir -p ~/src/api ~/src/notes ~/src/broken && cd ~/src/api && "
                 f"printf %s {shlex.quote(APP_GOMOD)} > go.mod && "
                 f"printf %s {shlex.quote(APP_MAIN)} > main.go && {env} go mod download && "
                 f"{env} go build -o /dev/null . && echo notes > ~/src/notes/README && "
                 "cd ~/src/broken && printf 'module broken\\n\\ngo 1.21\\n' > go.mod && "
                 "printf 'package main\\n\\nfunc main() { missing() }\\n' > main.go",
           user=USER)  # fmt: skip
    sh(host, "mkdir -p /home/bob/api && cp /home/dev/src/api/go.* /home/dev/src/api/main.go "
             "/home/bob/api/ && chown -R bob: /home/bob/api && chmod 755 /home/bob")
    api_sum = sh(host, "sha256sum ~/src/api/*", user=USER)
    plan = {d["key"]: d for d in apply(host)["plan"]["decisions"]}
    seed(host, warm_cache, [f"{plan['GOCACHE']['value']}/gotune-verify-tuned",
                            "/home/dev/.cache/go-build/gotune-verify-default"])

    projects = ["/home/dev/src/api", "/home/dev/src/notes", "/home/dev/src/broken",
                "/home/bob/api"]
    h = verify(host, "--bench", GENERATED, "--runs", RUNS,
               *[a for p in projects for a in ("--project", p)])
    service = bench_named(h, GENERATED)
    assert h["variants"]["before"]["same_as"] == "default"
    text = service["explanation"]
    assert "tmpfs" in text and "warm page cache" in text, text
    if service["verdicts"]["before"] == "no measurable difference":
        assert "served from RAM" in text

    api = bench_named(h, "go build ./... (/home/dev/src/api)")
    assert not api.get("error") and api["tuned"]["runs"] == int(RUNS), api
    assert bench_named(h, "go test -run XXX ./... (/home/dev/src/api)")["tuned"]
    errors = {b["name"]: b.get("error") or "" for b in h["benchmarks"]}
    assert "not a Go module" in errors["go build ./... (/home/dev/src/notes)"]
    assert "undefined: missing" in errors["go build ./... (/home/dev/src/broken)"]
    assert "owned by bob" in errors["go test -run XXX ./... (/home/bob/api)"]
    # a project's error is reported, never a failed tuning
    assert [c for c in h["checks"] if not c["ok"]] == []
    assert all(benchmark_ok(b) for b in h["benchmarks"] if b.get("project"))
    # nothing was written into the project, nothing downloaded into the user's cache
    assert sh(host, "sha256sum ~/src/api/*", user=USER) == api_sum
    assert sh(host, "ls ~/go/pkg/mod", user=USER).split() == [
        "cache", "example.com", "gotune-verify-default", "gotune-verify-tuned"]
    print(f"fast disk: {text}")


def test_a_baseline_is_kept_by_a_second_apply_survives_a_hand_change_and_goes_with_undo(
    sandbox: SandboxFactory, warm_cache: Path
) -> None:
    """The module cache started on a mount of its own; apply recorded that and moved it.
    Then the mount went away by hand: before cannot be re-created on its filesystem, and
    the report says so instead of dropping it; tuned and default are measured anyway."""
    data = {"gotune_users": [USER], "gotune_gocache_tmpfs": "never"}
    host = sandbox(1, data=[data]).hosts[0]
    host.add_user(USER)
    host.link_go()
    sh(host, "mkdir -p /srv/gomod && mount -t tmpfs -o size=64m tmpfs /srv/gomod && "
             "mkdir /srv/gomod/mod && chown dev: /srv/gomod/mod")
    sh(host, "go env -w GOMODCACHE=/srv/gomod/mod", user=USER)
    plan = {d["key"]: d for d in apply(host)["plan"]["decisions"]}
    assert plan["GOMODCACHE"]["change"], plan["GOMODCACHE"]
    recorded = sh(host, f"sha256sum {BASELINE}")
    assert json.loads(sh(host, f"cat {BASELINE}"))["users"][USER]["places"]["GOMODCACHE"][
        "fstype"] == "tmpfs"

    again = apply(host)
    assert again["changed"] == 0, again["operations"]
    assert sh(host, f"sha256sum {BASELINE}") == recorded  # the setup before, not after

    sh(host, "umount /srv/gomod")  # by hand
    seed(host, warm_cache, ["/home/dev/.cache/go-build/gotune-verify-tuned",
                            "/home/dev/.cache/go-build/gotune-verify-default"])
    h = verify(host, "--bench", GENERATED, "--runs", "1")
    before = h["variants"]["before"]
    assert "/srv/gomod" in before["unmeasurable"] and "no longer mounted" in before["unmeasurable"]
    assert "not measurable" in before["summary"]
    service = bench_named(h, GENERATED)
    assert service["before"] is None and service["headline_ratio"] is None
    assert "no longer mounted" in service["unmeasurable"]["before"]
    assert service["tuned"]["runs"] == service["default"]["runs"] == 1
    assert h["headline"]["against"] == "default"

    code, undone = gotune_json("undo", str(host.key.parent / "inventory.py"), "--yes")
    assert code == 0, undone
    assert sh(host, "test ! -e /var/lib/gotune && echo gone") == "gone\n"
