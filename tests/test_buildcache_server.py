"""The build cache's site tier in-process: who may write, tampered objects, eviction, a crash.

A real server on loopback (the shared core, the build cache's routes) and plain
http.client requests, as the Go helper sends them; one test kills a real
``gotune buildcache serve`` process in the middle of a PUT.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gotune.agent.buildcache.cache import BuildCache, Config
from gotune.agent.buildcache.server import BuildcacheServer
from gotune.agent.buildcache.token import digest
from gotune.agent.prom import parse_samples

TOKEN = "builders-token-for-tests"
REPO = Path(__file__).resolve().parent.parent


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def action(n: int) -> str:
    return sha(f"action {n}".encode())


@contextmanager
def site(tmp_path: Path, token: str | None = TOKEN, **kw: object) -> Iterator[tuple[
        tuple[str, int], BuildCache]]:
    digest_file = None
    if token is not None:
        digest_file = tmp_path / "token.sha256"
        digest_file.write_text(digest(token) + "\n")
    kw.setdefault("wear_state", tmp_path / "no-wear.json")
    cache = BuildCache(Config(cache_dir=tmp_path / "site", token_digest_file=digest_file,
                              **kw))  # type: ignore[arg-type]
    server = BuildcacheServer(("127.0.0.1", 0), cache)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address, cache
    finally:
        server.shutdown()
        server.server_close()


def request(addr: tuple[str, int], method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection(*addr, timeout=20)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def put(addr: tuple[str, int], act: str, data: bytes, output: str | None = None,
        token: str | None = TOKEN) -> tuple[int, bytes]:
    headers = {"Gotune-Output-Id": output or sha(data)}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    code, body, _ = request(addr, "PUT", f"/cache/{act}", data, headers)
    return code, body


def metrics(addr: tuple[str, int]) -> dict[str, float]:
    return parse_samples(request(addr, "GET", "/metrics")[1].decode())


def test_a_builder_puts_and_anyone_gets_the_output_with_its_id(tmp_path: Path) -> None:
    data = b"compiled package bytes" * 100
    with site(tmp_path) as (addr, _):
        assert request(addr, "GET", f"/cache/{action(1)}")[0] == 404
        assert put(addr, action(1), data)[0] == 201
        code, body, headers = request(addr, "GET", f"/cache/{action(1)}")
        assert (code, body) == (200, data)
        assert headers["gotune-output-id"] == sha(data)
        assert int(headers["gotune-put-time"]) > 0
        code, body, headers = request(addr, "HEAD", f"/cache/{action(1)}")
        assert code == 200 and body == b"" and headers["content-length"] == str(len(data))
        assert put(addr, action(1), data)[0] == 200  # already stored
        m = metrics(addr)
    assert m["gotune_buildcache_hits_total"] == 2
    assert m["gotune_buildcache_misses_total"] == 1
    assert m['gotune_buildcache_puts_total{outcome="stored"}'] == 1
    assert m['gotune_buildcache_puts_total{outcome="exists"}'] == 1


def test_without_the_builders_token_a_client_may_only_read(tmp_path: Path) -> None:
    data = b"x" * 1000
    with site(tmp_path) as (addr, cache):
        code, body = put(addr, action(1), data, token=None)
        assert code == 401 and b"token" in body
        assert put(addr, action(1), data, token="a guess")[0] == 403
        assert request(addr, "GET", f"/cache/{action(1)}")[0] == 404
        m = metrics(addr)
        assert not list((cache.store.root / "objects").rglob("*"))
    assert m['gotune_buildcache_auth_failures_total{reason="missing"}'] == 1
    assert m['gotune_buildcache_auth_failures_total{reason="wrong"}'] == 1
    with site(tmp_path / "ro", token=None) as (addr, _):
        code, body = put(addr, action(1), data)
        assert code == 403 and b"no writes" in body


def test_a_refused_put_never_reads_its_body(tmp_path: Path) -> None:
    """With Expect: 100-continue the refusal comes first, and the body is never sent."""
    with site(tmp_path) as (addr, _):
        s = socket.create_connection(addr)
        s.sendall((f"PUT /cache/{action(1)} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
                   f"Gotune-Output-Id: {sha(b'y')}\r\nExpect: 100-continue\r\n\r\n").encode())
        s.settimeout(5)
        answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 401") and b"Connection: close" in answer
        s.close()


def test_a_body_that_does_not_hash_to_its_output_id_is_refused_and_counted(
    tmp_path: Path,
) -> None:
    with site(tmp_path) as (addr, cache):
        code, body = put(addr, action(1), b"evil bytes", output=sha(b"the real bytes"))
        assert code == 400 and b"OutputID" in body
        assert request(addr, "GET", f"/cache/{action(1)}")[0] == 404
        assert not [p for p in (cache.store.root / "objects").rglob("*") if p.is_file()]
        m = metrics(addr)
    assert m['gotune_buildcache_tampered_total{where="put"}'] == 1


def test_an_object_tampered_with_on_disk_is_never_served(tmp_path: Path) -> None:
    small, large = b"s" * 1000, os.urandom(300 * 1024)  # the loop's path and a worker's
    with site(tmp_path) as (addr, cache):
        for n, data in ((1, small), (2, large)):
            assert put(addr, action(n), data)[0] == 201
            path = cache.store.object_path(sha(data))
            path.write_bytes(b"X" + data[1:])  # same size, other bytes
            assert request(addr, "GET", f"/cache/{action(n)}")[0] == 404
            assert not path.exists()
        m = metrics(addr)
        health = json.loads(request(addr, "GET", "/healthz")[1])
    assert m['gotune_buildcache_tampered_total{where="store"}'] == 2
    assert health["tampered"] == 2 and health["objects"] == 0


def test_a_full_cache_evicts_the_least_recently_used_outputs(tmp_path: Path) -> None:
    blobs = [os.urandom(40_000) for _ in range(4)]
    with site(tmp_path, max_cache_size=100_000) as (addr, cache):
        for n in (0, 1):
            assert put(addr, action(n), blobs[n])[0] == 201
        assert request(addr, "GET", f"/cache/{action(0)}")[0] == 200  # 0 is now the newest
        assert put(addr, action(2), blobs[2])[0] == 201  # over the cap: 1 goes
        assert [request(addr, "GET", f"/cache/{action(n)}")[0] for n in (0, 1, 2)] == [
            200, 404, 200]
        assert put(addr, action(3), os.urandom(200_000))[0] == 413  # larger than the cache
        m = metrics(addr)
        assert cache.store.total_bytes <= 100_000
    assert m["gotune_buildcache_evictions_total"] == 1
    assert m["gotune_buildcache_cache_bytes"] <= 100_000


def test_wear_critical_refuses_writes_but_keeps_serving(tmp_path: Path) -> None:
    wear = tmp_path / "wear.json"
    with site(tmp_path, wear_state=wear) as (addr, _):
        assert put(addr, action(1), b"before")[0] == 201
        wear.write_text(json.dumps({"status": "critical", "reason": "test", "updated": 1}))
        time.sleep(1.1)  # the state file is looked at once a second
        code, body = put(addr, action(2), b"after")
        assert code == 507 and b"critical" in body
        assert request(addr, "GET", f"/cache/{action(1)}")[0] == 200


def test_the_index_survives_a_restart_and_drops_entries_without_an_output(
    tmp_path: Path,
) -> None:
    with site(tmp_path) as (addr, cache):
        for n in (1, 2):
            assert put(addr, action(n), f"output {n}".encode())[0] == 201
        cache.store.object_path(sha(b"output 2")).unlink()  # lost, say, to a disk error
    with site(tmp_path) as (addr, cache):
        assert request(addr, "GET", f"/cache/{action(1)}")[1] == b"output 1"
        assert request(addr, "GET", f"/cache/{action(2)}")[0] == 404
        assert not cache.store.action_path(action(2)).exists()


@pytest.mark.slow
def test_a_site_killed_mid_put_serves_no_partial_object_after_restart(tmp_path: Path) -> None:
    digest_file = tmp_path / "token.sha256"
    digest_file.write_text(digest(TOKEN) + "\n")
    cache_dir = tmp_path / "site"
    argv = [sys.executable, "-m", "gotune", "buildcache", "serve", "--listen", "127.0.0.1:0",
            "--cache-dir", str(cache_dir), "--token-digest-file", str(digest_file),
            "--wear-state", str(tmp_path / "none.json"), "--json"]

    def start() -> tuple[subprocess.Popen[str], tuple[str, int]]:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert proc.stdout is not None
        url = json.loads(proc.stdout.readline())["url"]
        host, port = url.removeprefix("http://").rsplit(":", 1)
        return proc, (host, int(port))

    data = os.urandom(4 << 20)
    proc, addr = start()
    try:
        s = socket.create_connection(addr)
        s.sendall((f"PUT /cache/{action(1)} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}"
                   f"\r\nGotune-Output-Id: {sha(data)}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
                   ).encode() + data[: len(data) // 2])
        deadline = time.monotonic() + 10
        while not list(cache_dir.rglob(".tmp-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(cache_dir.rglob(".tmp-*")), "the half-received output is not on disk yet"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        s.close()
    finally:
        if proc.poll() is None:
            proc.kill()
    proc, addr = start()
    try:
        assert not list(cache_dir.rglob(".tmp-*"))  # removed at start
        assert request(addr, "GET", f"/cache/{action(1)}")[0] == 404
        assert put(addr, action(1), data)[0] == 201  # and the builder's retry is stored
        assert request(addr, "GET", f"/cache/{action(1)}")[1] == data
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
