"""Fills held in memory until the commit thread writes them (Mirror, no HTTP server)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import gotune.agent.mirror.store as store_module
from gotune.agent.mirror.core import Config, Mirror
from gotune.agent.mirror.modpath import parse_request
from gotune.agent.mirror.store import Store
from gotune.agent.mirror.upstream import UpstreamFailed, parse_url_list
from tests.goproxy_tree import StaticUpstream, build_tree, go_module

MOD = "/example.com/fill/@v/v1.0.0.mod"
INFO = "/example.com/fill/@v/v1.0.0.info"
ZIP = "/example.com/fill/@v/v1.0.0.zip"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return build_tree(tmp_path / "upstream", [
        go_module("example.com/fill", "v1.0.0", "fill", "const F = 1"),
    ])


@pytest.fixture
def upstream(tree: Path) -> Iterator[StaticUpstream]:
    with StaticUpstream(tree) as up:
        yield up


@contextmanager
def new_mirror(cache: Path, upstream: StaticUpstream, **kw: object) -> Iterator[Mirror]:
    config = Config(cache_dir=cache, upstreams=parse_url_list(upstream.url), timeout=5.0,
                    prefetch=False, **kw)  # type: ignore[arg-type]
    mirror = Mirror(config)
    try:
        yield mirror
    finally:
        mirror.close()


@contextmanager
def commits_held(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Stop the commit thread before it writes anything, until the event is set."""
    go_on = threading.Event()
    write_tmp = Store._write_tmp

    def held(self: Store, req: object, data: bytes) -> Path:
        assert go_on.wait(20), "commit never released"
        return write_tmp(self, req, data)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "_write_tmp", held)
    try:
        yield go_on
    finally:
        go_on.set()


def test_small_artefact_is_served_from_memory_before_any_file_is_written(
    tmp_path: Path, upstream: StaticUpstream, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = (tree / MOD.lstrip("/")).read_bytes()
    cache = tmp_path / "cache"
    with commits_held(monkeypatch) as go_on, new_mirror(
        cache, upstream, wear_state=tmp_path / "none.json"
    ) as mirror:
        first = mirror.get(parse_request(MOD))
        again = mirror.get(parse_request(MOD))
        vdir = cache / "example.com/fill/@v"
        on_disk = sorted(p.name for p in vdir.iterdir()) if vdir.exists() else []
        go_on.set()
        mirror.store.drain()
        after = mirror.get(parse_request(MOD))
    assert first.data == want and first.path is None and not first.hit
    assert again.data == want and again.hit  # pending bytes are a hit, not a second fetch
    assert on_disk == []  # neither the artefact nor a temp file before the commit
    assert upstream.count(MOD) == 1
    assert after.path == vdir / "v1.0.0.mod" and after.path.read_bytes() == want
    assert (vdir / "list").read_text() == "v1.0.0\n"
    assert mirror.store._pending_bytes == 0


def test_fill_writes_its_own_temp_file_when_the_memory_budget_is_spent(
    tmp_path: Path, upstream: StaticUpstream, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "PENDING_MEMORY_MAX", 0)
    cache = tmp_path / "cache"
    with new_mirror(cache, upstream, wear_state=tmp_path / "none.json") as mirror:
        answer = mirror.get(parse_request(ZIP))
        mirror.store.drain()
    assert answer.data is None and answer.path is not None  # temp file, or already renamed
    assert (cache / ZIP.lstrip("/")).read_bytes() == (tree / ZIP.lstrip("/")).read_bytes()
    assert mirror.store._pending_bytes == 0


def test_invalid_small_artefact_is_never_cached_and_frees_its_memory(
    tmp_path: Path, tree: Path
) -> None:
    bad = tmp_path / "bad-upstream"
    shutil.copytree(tree, bad)
    (bad / INFO.lstrip("/")).write_text('{"Version": "v9.9.9"}')
    cache = tmp_path / "cache"
    with StaticUpstream(bad) as up, new_mirror(
        cache, up, wear_state=tmp_path / "none.json"
    ) as mirror:
        with pytest.raises(UpstreamFailed, match=r"does not describe v1\.0\.0"):
            mirror.get(parse_request(INFO))
        mirror.store.drain()
        invalid = mirror.metrics.total("invalid_upstream_total")
    assert not (cache / INFO.lstrip("/")).exists()
    assert mirror.store._pending_bytes == 0
    assert invalid == 1


def test_wear_budget_counts_a_write_as_soon_as_it_is_served(
    tmp_path: Path, upstream: StaticUpstream, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = (tree / ZIP.lstrip("/")).stat().st_size
    wear = tmp_path / "wear.json"
    wear.write_text(json.dumps({"status": "warn", "reason": "test says warn",
                                "daily_write_budget_bytes": size + 10, "updated": time.time()}))
    cache = tmp_path / "cache"
    with commits_held(monkeypatch) as go_on, new_mirror(
        cache, upstream, wear_state=wear
    ) as mirror:
        mirror.get(parse_request(ZIP))
        counted = mirror.guard.health()["daily_written_bytes"]
        may_write_more, _ = mirror.guard.may_write(size)
        go_on.set()
        mirror.store.drain()
        written = mirror.guard.health()["daily_written_bytes"]
    assert counted == size  # before the commit thread has written a byte
    assert not may_write_more  # a second artefact would overshoot the budget
    assert written == size  # the commit does not count it twice
    ledger = json.loads((cache / ".gotune/writes.json").read_text())
    assert ledger["bytes"] == size
