"""The mirror server in-process against a local upstream tree, with faults injected."""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gotune.agent.mirror.core import Config, Mirror
from gotune.agent.mirror.server import MirrorServer
from gotune.agent.mirror.upstream import parse_url_list
from gotune.agent.prom import parse_samples
from tests.goproxy_tree import Fault, StaticUpstream, build_tree, go_module, standard_modules

LIB = "/example.com/!big!corp/!lib/@v"
LIB_ZIP = f"{LIB}/v1.1.0.zip"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("upstream")
    mods = standard_modules(big_bytes=3 << 20)
    mods.append(go_module("example.com/second", "v1.0.0", "second", "const S = 2"))
    return build_tree(root, mods)


@pytest.fixture
def upstream(tree: Path) -> Iterator[StaticUpstream]:
    with StaticUpstream(tree) as up:
        yield up


@contextmanager
def mirror_at(
    cache: Path, upstreams: str, allow: list[str] | None = None, **kw: Any
) -> Iterator[tuple[str, Mirror]]:
    kw.setdefault("wear_state", cache.parent / f"{cache.name}-wear.json")
    kw.setdefault("timeout", 2.0)
    config = Config(cache_dir=cache, upstreams=parse_url_list(upstreams), **kw)
    mirror = Mirror(config)
    nets = [ipaddress.ip_network(a) for a in allow] if allow is not None else None
    server = MirrorServer(("127.0.0.1", 0), mirror, nets)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", mirror
    finally:
        server.shutdown()
        server.server_close()
        mirror.close()


def get(url: str, path: str, method: str = "GET") -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def metrics(url: str) -> dict[str, float]:
    return parse_samples(get(url, "/metrics")[1].decode())


def settle(mirror: Mirror) -> None:
    """Wait for the commit thread (files are fsynced and renamed after serving)."""
    mirror.store.drain()


def test_every_goproxy_endpoint_answers_like_the_upstream(
    tmp_path: Path, upstream: StaticUpstream, tree: Path
) -> None:
    with mirror_at(tmp_path / "cache", upstream.url) as (url, _):
        for path in [f"{LIB}/list", f"{LIB}/v1.1.0.info", f"{LIB}/v1.1.0.mod", LIB_ZIP,
                     "/example.com/multi/v2/@v/v2.0.0.zip",
                     "/example.com/legacy/@v/v2.0.0+incompatible.mod",
                     "/example.com/pseudo/@v/v0.0.0-20240102030405-abcdefabcdef.zip"]:
            code, body = get(url, path)
            assert code == 200, path
            assert body == (tree / path.lstrip("/")).read_bytes(), path
        code, body = get(url, LIB_ZIP, method="HEAD")
        assert code == 200 and body == b""
        assert get(url, "/example.com/!big!corp/!lib/@latest")[0] == 404  # tree has none
        code, body = get(url, "/example.com/nope/@v/v1.0.0.zip")
        assert code == 404 and body.startswith(b"not found") and body.count(b"\n") == 1


def test_cache_dir_is_a_goproxy_tree_with_local_lists(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    cache = tmp_path / "cache"
    with mirror_at(cache, upstream.url) as (url, _):
        get(url, f"{LIB}/v1.0.0.mod")
        get(url, f"{LIB}/v1.1.0.mod")
    vdir = cache / "example.com/!big!corp/!lib/@v"
    assert (vdir / "list").read_text() == "v1.0.0\nv1.1.0\n"
    assert (vdir / "v1.1.0.mod").read_text().startswith("module example.com/BigCorp/Lib")
    assert not [p for p in cache.rglob(".tmp-*")]


@pytest.mark.parametrize(
    "path",
    ["/../../../etc/passwd", "/example.com/%2e%2e/%2e%2e/%2e%2e/etc/@v/list",
     "/example.com/m%00/@v/list", "/example.com/BigCorp/@v/list", "/example.com/!!x/@v/list",
     "/" + "x" * 5000, "/.gotune/meta/x/@v/list", "/example.com/m/@v/.tmp-abc.zip"],
)
def test_hostile_paths_get_400_or_404_and_touch_nothing(
    tmp_path: Path, upstream: StaticUpstream, path: str
) -> None:
    with mirror_at(tmp_path / "cache", upstream.url) as (url, _):
        code, body = get(url, path)
    assert code in (400, 404), body
    assert upstream.total() == 0
    assert b"root:" not in body


def test_concurrent_clients_cause_one_upstream_fetch(
    tmp_path: Path, upstream: StaticUpstream, tree: Path
) -> None:
    upstream.fault(LIB_ZIP, Fault(delay=0.5))
    with mirror_at(tmp_path / "cache", upstream.url) as (url, _):
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda _: get(url, LIB_ZIP), range(16)))
        m = metrics(url)
    expected = (tree / LIB_ZIP.lstrip("/")).read_bytes()
    assert all(code == 200 and body == expected for code, body in results)
    assert upstream.count(LIB_ZIP) == 1
    assert m["gotune_mirror_upstream_requests_total"] == 1


def test_comma_falls_back_only_on_not_found(tmp_path: Path, tree: Path) -> None:
    with StaticUpstream(tree) as bad, StaticUpstream(tree) as good:
        bad.fail_all(Fault(status=503))
        with mirror_at(tmp_path / "c1", f"{bad.url},{good.url}") as (url, _):
            assert get(url, LIB_ZIP)[0] == 502
        assert good.total() == 0
        bad.fail_all(Fault(status=404))
        with mirror_at(tmp_path / "c2", f"{bad.url},{good.url}") as (url, _):
            assert get(url, LIB_ZIP)[0] == 200
        bad.fail_all(Fault(status=410))
        with mirror_at(tmp_path / "c3", f"{bad.url},{good.url}") as (url, _):
            assert get(url, f"{LIB}/v1.0.0.mod")[0] == 200


def test_pipe_falls_back_on_any_error_including_timeouts(tmp_path: Path, tree: Path) -> None:
    with StaticUpstream(tree) as bad, StaticUpstream(tree) as good:
        bad.fail_all(Fault(status=500))
        with mirror_at(tmp_path / "c1", f"{bad.url}|{good.url}") as (url, _):
            assert get(url, LIB_ZIP)[0] == 200
        bad.fail_all(Fault(delay=3.0))  # longer than the 2 s timeout
        with mirror_at(tmp_path / "c2", f"{bad.url}|{good.url}") as (url, _):
            start = time.monotonic()
            assert get(url, f"{LIB}/v1.0.0.mod")[0] == 200
            assert time.monotonic() - start < 2.9
            assert metrics(url)['gotune_mirror_upstream_errors_total{reason="timeout"}'] == 1


def test_truncated_zip_is_never_cached_and_next_try_heals(
    tmp_path: Path, upstream: StaticUpstream, tree: Path
) -> None:
    cache = tmp_path / "cache"
    upstream.fault(LIB_ZIP, Fault(truncate=100))
    with mirror_at(cache, upstream.url) as (url, _):
        assert get(url, LIB_ZIP)[0] == 502
        assert not (cache / LIB_ZIP.lstrip("/")).exists()
        upstream.fault(LIB_ZIP, Fault())
        code, body = get(url, LIB_ZIP)
    assert code == 200 and body == (tree / LIB_ZIP.lstrip("/")).read_bytes()
    assert not [p for p in cache.rglob(".tmp-*")]


def test_zip_with_entries_outside_the_module_prefix_is_rejected(
    tmp_path: Path
) -> None:
    root = tmp_path / "evil"
    evil = go_module("example.com/evil", "v1.0.0", "evil", "")
    build_tree(root, [evil])
    other = go_module("example.com/other", "v1.0.0", "evil", "")
    build_tree(tmp_path / "other", [other])
    zip_path = root / "example.com/evil/@v/v1.0.0.zip"
    zip_path.write_bytes((tmp_path / "other/example.com/other/@v/v1.0.0.zip").read_bytes())
    with StaticUpstream(root) as up, mirror_at(tmp_path / "cache", up.url) as (url, _):
        code, body = get(url, "/example.com/evil/@v/v1.0.0.zip")
        assert code == 502 and b"outside" in body
        assert metrics(url)["gotune_mirror_invalid_upstream_total"] == 1


def test_list_is_revalidated_after_ttl_and_served_stale_when_upstream_fails(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    with mirror_at(tmp_path / "cache", upstream.url, list_ttl=0.3) as (url, _):
        assert get(url, f"{LIB}/list") == (200, b"v1.0.0\nv1.1.0\n")
        assert get(url, f"{LIB}/list")[0] == 200
        assert upstream.count(f"{LIB}/list") == 1  # fresh: answered locally
        time.sleep(0.4)
        upstream.fail_all(Fault(status=503))
        assert get(url, f"{LIB}/list") == (200, b"v1.0.0\nv1.1.0\n")
        assert upstream.count(f"{LIB}/list") == 2
        m = metrics(url)
    assert m['gotune_mirror_stale_served_total{kind="list"}'] == 1


@pytest.mark.parametrize("prefetch", [True, False])
def test_info_request_prefetches_the_zip_once_unless_disabled(
    tmp_path: Path, upstream: StaticUpstream, tree: Path, prefetch: bool
) -> None:
    with mirror_at(tmp_path / "cache", upstream.url, prefetch=prefetch) as (url, mirror):
        assert get(url, f"{LIB}/v1.1.0.info")[0] == 200
        mirror.close()  # wait for the prefetch
        assert upstream.count(LIB_ZIP) == (1 if prefetch else 0)
        code, body = get(url, LIB_ZIP)
        m = metrics(url)
    assert code == 200 and body == (tree / LIB_ZIP.lstrip("/")).read_bytes()
    assert upstream.count(LIB_ZIP) == 1
    assert m.get('gotune_mirror_prefetches_total{outcome="ok"}', 0) == (1 if prefetch else 0)
    assert m.get('gotune_mirror_cache_hits_total{kind="zip"}', 0) == (1 if prefetch else 0)


def test_offline_serves_only_the_cache(tmp_path: Path, upstream: StaticUpstream) -> None:
    cache = tmp_path / "cache"
    with mirror_at(cache, upstream.url) as (url, _):
        assert get(url, f"{LIB}/v1.0.0.mod")[0] == 200
    before = upstream.total()
    with mirror_at(cache, upstream.url, offline=True) as (url, _):
        assert get(url, f"{LIB}/v1.0.0.mod")[0] == 200
        assert get(url, f"{LIB}/list") == (200, b"v1.0.0\n")  # the cache's own list
        code, body = get(url, f"{LIB}/v1.1.0.mod")
        assert code == 404 and b"offline" in body
        assert json.loads(get(url, "/healthz")[1])["caching"] is False
    assert upstream.total() == before


def test_max_cache_size_evicts_least_recently_used_versions(
    tmp_path: Path, upstream: StaticUpstream, tree: Path
) -> None:
    cache = tmp_path / "cache"
    lib0 = tree / LIB.lstrip("/") / "v1.0.0.zip"
    limit = lib0.stat().st_size * 2 + 100
    with mirror_at(cache, upstream.url, max_cache_size=limit) as (url, mirror):
        get(url, f"{LIB}/v1.0.0.zip")
        get(url, "/example.com/multi/v2/@v/v2.0.0.zip")
        settle(mirror)
        get(url, f"{LIB}/v1.0.0.zip")  # a hit: lib v1.0.0 is now the most recent
        get(url, "/example.com/second/@v/v1.0.0.zip")  # over the limit: evict multi
        settle(mirror)
        m = metrics(url)
        code, _ = get(url, "/example.com/big/@v/v1.0.0.zip")  # bigger than the whole cache
    assert code == 200
    assert (cache / LIB.lstrip("/") / "v1.0.0.zip").exists()
    assert not (cache / "example.com/multi/v2/@v/v2.0.0.zip").exists()
    assert not (cache / "example.com/big/@v/v1.0.0.zip").exists()
    assert m["gotune_mirror_evictions_total"] == 1
    assert m["gotune_mirror_cache_bytes"] <= limit
    assert sum(p.stat().st_size for p in cache.rglob("*.zip")) <= limit


def test_metrics_count_hits_misses_and_bytes(
    tmp_path: Path, upstream: StaticUpstream, tree: Path
) -> None:
    size = (tree / LIB_ZIP.lstrip("/")).stat().st_size
    with mirror_at(tmp_path / "cache", upstream.url) as (url, mirror):
        get(url, LIB_ZIP)
        settle(mirror)
        get(url, LIB_ZIP)
        get(url, LIB_ZIP)
        _, error_body = get(url, "/example.com/%2e%2e/@v/list")
        # A worker counts a request once it has answered it: the client can be faster.
        zips = 'gotune_mirror_requests_total{code="200",kind="zip"}'
        invalid = 'gotune_mirror_requests_total{code="400",kind="invalid"}'
        deadline = time.monotonic() + 10
        earlier_pages = 0  # a /metrics page counts in served bytes, from the next page on
        while (m := parse_samples(text := get(url, "/metrics")[1].decode())).get(zips) != 3 or (
            invalid not in m
        ):
            assert time.monotonic() < deadline, text
            earlier_pages += len(text.encode())
            time.sleep(0.05)
    assert m['gotune_mirror_cache_misses_total{kind="zip"}'] == 1
    assert m['gotune_mirror_cache_hits_total{kind="zip"}'] == 2
    assert m['gotune_mirror_requests_total{code="200",kind="zip"}'] == 3
    assert m['gotune_mirror_requests_total{code="400",kind="invalid"}'] == 1
    assert m["gotune_mirror_served_bytes_total"] == 3 * size + len(error_body) + earlier_pages
    assert m["gotune_mirror_upstream_fetched_bytes_total"] == size
    assert m["gotune_mirror_cache_bytes"] == size
    assert m["gotune_mirror_http_connections"] >= 1  # this request's, at least
    assert m['gotune_mirror_http_events_total{event="fast"}'] >= 2  # hits the loop answered
    for line in text.splitlines():
        if line.startswith("# TYPE") and line.endswith(" counter"):
            assert line.split()[2].endswith("_total")
    assert text.count("# HELP") == text.count("# TYPE")


def test_upstream_rate_limit_paces_fetches_and_is_reported(
    tmp_path: Path, upstream: StaticUpstream, tree: Path
) -> None:
    big = "/example.com/big/@v/v1.0.0.zip"
    size = (tree / big.lstrip("/")).stat().st_size
    rate = size  # one second's worth for the whole file
    with mirror_at(tmp_path / "cache", upstream.url, limit_rate=rate) as (url, _):
        start = time.monotonic()
        assert get(url, big)[0] == 200
        elapsed = time.monotonic() - start
        m = metrics(url)
    assert 0.9 <= elapsed < 2.5
    assert m['gotune_mirror_rate_limit_wait_seconds_total{limit="bytes"}'] > 0.8


def test_request_rate_limit_spaces_upstream_requests(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    with mirror_at(tmp_path / "cache", upstream.url, limit_requests=10.0) as (url, _):
        start = time.monotonic()
        for v in ("v1.0.0", "v1.1.0"):
            for kind in ("info", "mod", "zip"):
                assert get(url, f"{LIB}/{v}.{kind}")[0] == 200
        elapsed = time.monotonic() - start
    assert elapsed >= 0.45  # 6 requests at 10/s after a one-request burst


def write_wear(path: Path, status: str, budget: int | None = None) -> None:
    path.write_text(json.dumps({"status": status, "reason": f"test says {status}",
                                "daily_write_budget_bytes": budget, "updated": time.time()}))


def test_wear_critical_stops_caching_but_keeps_serving(
    tmp_path: Path, upstream: StaticUpstream, tree: Path
) -> None:
    cache, wear = tmp_path / "cache", tmp_path / "wear.json"
    write_wear(wear, "critical")
    with mirror_at(cache, upstream.url, wear_state=wear) as (url, _):
        code, body = get(url, LIB_ZIP)
        assert code == 200 and body == (tree / LIB_ZIP.lstrip("/")).read_bytes()
        health = json.loads(get(url, "/healthz")[1])
        m = metrics(url)
    assert not (cache / LIB_ZIP.lstrip("/")).exists()
    assert health["caching"] is False and "critical" in health["caching_reason"]
    assert health["wear"]["status"] == "critical"
    assert m["gotune_mirror_caching_enabled"] == 0
    assert m['gotune_mirror_wear_status{status="critical"}'] == 1
    assert m['gotune_mirror_not_cached_total{reason="wear"}'] == 1


def test_wear_warn_caches_within_the_daily_budget_only(
    tmp_path: Path, upstream: StaticUpstream, tree: Path
) -> None:
    cache, wear = tmp_path / "cache", tmp_path / "wear.json"
    small = tree / LIB_ZIP.lstrip("/")
    write_wear(wear, "warn", budget=small.stat().st_size + 1000)
    with mirror_at(cache, upstream.url, wear_state=wear) as (url, _):
        assert get(url, LIB_ZIP)[0] == 200  # fits the budget: cached
        assert get(url, "/example.com/big/@v/v1.0.0.zip")[0] == 200  # over it: relayed
        health = json.loads(get(url, "/healthz")[1])
    assert (cache / LIB_ZIP.lstrip("/")).exists()
    assert not (cache / "example.com/big/@v/v1.0.0.zip").exists()
    assert health["wear"]["status"] == "warn"
    assert health["daily_written_bytes"] == small.stat().st_size
    assert json.loads((cache / ".gotune/writes.json").read_text())["bytes"] == small.stat().st_size


@pytest.mark.parametrize("status", ["ok", "unknown"])
def test_wear_ok_or_unknown_caches_normally(
    tmp_path: Path, upstream: StaticUpstream, status: str
) -> None:
    cache, wear = tmp_path / "cache", tmp_path / "wear.json"
    if status == "ok":
        write_wear(wear, "ok")
    with mirror_at(cache, upstream.url, wear_state=wear) as (url, _):
        assert get(url, LIB_ZIP)[0] == 200
        assert json.loads(get(url, "/healthz")[1])["caching"] is True
    assert (cache / LIB_ZIP.lstrip("/")).exists()


def test_wear_state_change_is_picked_up_without_restart(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    cache, wear = tmp_path / "cache", tmp_path / "wear.json"
    write_wear(wear, "ok")
    with mirror_at(cache, upstream.url, wear_state=wear) as (url, _):
        assert get(url, f"{LIB}/v1.0.0.zip")[0] == 200
        write_wear(wear, "critical")
        os.utime(wear, (time.time() + 5, time.time() + 5))
        time.sleep(1.1)  # the state file is checked at most once a second
        assert get(url, f"{LIB}/v1.1.0.zip")[0] == 200
    assert (cache / LIB.lstrip("/") / "v1.0.0.zip").exists()
    assert not (cache / LIB.lstrip("/") / "v1.1.0.zip").exists()


def test_leftover_temp_files_are_removed_at_start_and_never_served(
    tmp_path: Path, upstream: StaticUpstream, tree: Path
) -> None:
    cache = tmp_path / "cache"
    vdir = cache / LIB.lstrip("/")
    vdir.mkdir(parents=True)
    (vdir / ".tmp-abc123").write_bytes(b"PK partial")
    with mirror_at(cache, upstream.url) as (url, mirror):
        assert mirror.store.removed_tmp == 1
        assert not (vdir / ".tmp-abc123").exists()
        code, body = get(url, LIB_ZIP)
    assert code == 200 and body == (tree / LIB_ZIP.lstrip("/")).read_bytes()


def test_clients_outside_the_allowlist_get_403_and_cause_no_fetch(
    tmp_path: Path, upstream: StaticUpstream
) -> None:
    with mirror_at(tmp_path / "c1", upstream.url, allow=["10.0.0.0/8"]) as (url, _):
        code, body = get(url, LIB_ZIP)
        assert code == 403 and b"allowlist" in body
    assert upstream.total() == 0
    with mirror_at(tmp_path / "c2", upstream.url, allow=["10.0.0.0/8", "127.0.0.0/8"]) as (url, _):
        assert get(url, LIB_ZIP)[0] == 200


def test_sumdb_supported_is_passed_through(tmp_path: Path, tree: Path) -> None:
    (tree / "sumdb/sum.golang.org").mkdir(parents=True, exist_ok=True)
    (tree / "sumdb/sum.golang.org/supported").write_text("")
    with StaticUpstream(tree) as up, mirror_at(tmp_path / "cache", up.url) as (url, _):
        assert get(url, "/sumdb/sum.golang.org/supported")[0] == 200
        assert get(url, "/sumdb/sum.example.org/supported")[0] == 404
        assert get(url, "/sumdb/sum.golang.org/../../etc/passwd")[0] == 400


def test_per_client_serving_limit_paces_responses(
    tmp_path: Path, upstream: StaticUpstream, tree: Path
) -> None:
    big = "/example.com/big/@v/v1.0.0.zip"
    size = (tree / big.lstrip("/")).stat().st_size
    with mirror_at(tmp_path / "cache", upstream.url) as (url, mirror):
        assert get(url, big)[0] == 200  # cache it unpaced
    config = replace(mirror.config, client_limit_rate=size * 2)
    with mirror_at(tmp_path / "cache", upstream.url, client_limit_rate=config.client_limit_rate) \
            as (url, _):
        start = time.monotonic()
        assert get(url, big)[0] == 200
        elapsed = time.monotonic() - start
    assert 0.4 <= elapsed < 1.5
