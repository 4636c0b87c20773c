"""Module paths, versions, request paths, sizes, rate limits and upstream lists."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gotune.agent.mirror.limits import TokenBucket, parse_rate
from gotune.agent.mirror.modpath import (
    InvalidPath,
    check_path,
    check_version,
    escape,
    parse_request,
    unescape,
    version_sort_key,
)
from gotune.agent.mirror.upstream import parse_url_list
from gotune.agent.units import parse_size


@pytest.mark.parametrize(
    ("raw", "kind", "module", "version"),
    [
        ("/example.com/!big!corp/!lib/@v/list", "list", "example.com/BigCorp/Lib", ""),
        ("/example.com/!big!corp/!lib/@latest", "latest", "example.com/BigCorp/Lib", ""),
        ("/example.com/multi/v2/@v/v2.1.0.zip", "zip", "example.com/multi/v2", "v2.1.0"),
        ("/example.com/legacy/@v/v2.0.0+incompatible.mod", "mod", "example.com/legacy",
         "v2.0.0+incompatible"),
        ("/example.com/p/@v/v0.0.0-20240102030405-abcdefabcdef.info", "info", "example.com/p",
         "v0.0.0-20240102030405-abcdefabcdef"),
        ("/example.com/m/@v/v1.0.0-!r!c1.info", "info", "example.com/m", "v1.0.0-RC1"),
        ("/gopkg.in/yaml.v3/@v/v3.0.1.zip", "zip", "gopkg.in/yaml.v3", "v3.0.1"),
        ("/example.com/m/@v/v1.0.0%2Bincompatible.zip", "zip", "example.com/m",
         "v1.0.0+incompatible"),
    ],
)
def test_goproxy_paths_decode_to_module_and_version(
    raw: str, kind: str, module: str, version: str
) -> None:
    req = parse_request(raw)
    assert (req.kind, req.module, req.version) == (kind, module, version)
    assert req.canonical


@pytest.mark.parametrize(
    "raw",
    [
        "/../../etc/passwd",
        "/example.com/../../etc/@v/list",
        "/example.com/%2e%2e/%2e%2e/@v/list",
        "/example.com/%2E%2E/@v/v1.0.0.zip",
        "/example.com/m/@v/..%2f..%2fpasswd.zip",
        "/example.com/m%00/@v/list",
        "/example.com/m/@v/v1.0.0.zip%00",
        "/example.com/BigCorp/@v/list",  # upper case must be !-encoded
        "/example.com/!/@v/list",
        "/example.com/!1x/@v/list",
        "/example.com/m!/@v/list",
        "/examplecom/m/@v/list",  # no dot in the first element
        "/-example.com/m/@v/list",
        "/example.com/.hidden/@v/list",
        "/example.com/m/@v/v1.0.zip",  # not canonical
        "/example.com/m/@v/v01.0.0.mod",
        "/example.com/m/@v/v2.0.0.mod",  # v2 needs /v2 or +incompatible
        "/example.com/m/v2/@v/v3.0.0.mod",
        "/example.com/m/v1/@v/v1.0.0.mod",
        "/example.com/m/@v/v1.0.0.tar",
        "/example.com/m/@v/.info",
        "/example.com/%ff/@v/list",
        "/example.com/con/@v/list",
        "/example.com/m/@v/master.zip",  # queries only for .info
        "/" + "a" * 3000 + ".com/@v/list",
        "/example.com//m/@v/list",
        "/example.com/m/@v/" + "v1.0.0-" + "a" * 10 + "/x.info",
    ],
)
def test_hostile_or_malformed_paths_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidPath):
        parse_request(raw)


def test_version_queries_are_info_only_and_marked_uncacheable() -> None:
    req = parse_request("/example.com/m/@v/master.info")
    assert req.kind == "info" and req.version == "master" and not req.canonical


@given(st.text(alphabet="abcXYZ019._~-/", min_size=1, max_size=40))
def test_escape_then_unescape_is_identity(path: str) -> None:
    assert unescape(escape(path)) == path
    assert escape(path) == escape(path).lower()


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_arbitrary_request_paths_parse_or_raise_invalid_path(raw: str) -> None:
    try:
        req = parse_request("/" + raw)
    except InvalidPath:
        return
    # Whatever parses is a valid module path whose escaped form names no parent dir.
    check_path(req.module)
    assert ".." not in req.upstream_path().split("/")
    assert "\x00" not in req.upstream_path()


def test_check_version_follows_major_suffix_rules() -> None:
    check_version("example.com/m", "v1.2.3")
    check_version("example.com/m", "v4.0.0+incompatible")
    check_version("example.com/m/v3", "v3.0.0-pre.1")
    check_version("gopkg.in/yaml.v2", "v2.4.0")
    for path, version in [("example.com/m", "v2.0.0"), ("example.com/m/v3", "v2.0.0"),
                          ("gopkg.in/yaml.v2", "v3.0.0"), ("example.com/m", "v1.0.0-01")]:
        with pytest.raises(InvalidPath):
            check_version(path, version)


def test_versions_sort_by_semver_not_by_string() -> None:
    versions = ["v1.10.0", "v1.2.0", "v1.2.0-rc.1", "v1.2.0-rc.10", "v1.2.0-rc.2", "v0.9.0"]
    assert sorted(versions, key=version_sort_key) == [
        "v0.9.0", "v1.2.0-rc.1", "v1.2.0-rc.2", "v1.2.0-rc.10", "v1.2.0", "v1.10.0"]


@pytest.mark.parametrize(("text", "value"), [("512K", 524288), ("8M", 8 << 20), ("100", 100),
                                             ("1.5k", 1536), ("2G", 2 << 30), ("1MiB", 1 << 20)])
def test_sizes_take_curl_style_suffixes(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "M", "-1", "0", "12Q", "1e9", "ten"])
def test_bad_sizes_and_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)
    with pytest.raises(ValueError):
        parse_rate(text if text not in ("1e9",) else "nan")


def test_token_bucket_long_run_rate_is_exact_whatever_the_chunk_sizes() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    bucket = TokenBucket(1000.0, clock=lambda: now[0], sleep=sleep)
    for n in [300, 5000, 1, 700, 4000]:
        bucket.acquire(n)
    # 10001 bytes at 1000/s, minus the 50-token initial burst.
    assert now[0] == pytest.approx((10001 - bucket.capacity) / 1000.0)


def test_url_list_keeps_separators_and_stops_at_direct() -> None:
    entries = parse_url_list("http://a.example|https://b.example/p/,http://c.example,direct,http://d")
    assert [(e.url, e.fallback_on_error) for e in entries] == [
        ("http://a.example", True), ("https://b.example/p", False), ("http://c.example", False)]
    assert parse_url_list("off") == []
    for bad in ["", "ftp://x", "http://a,,http://b", "http://"]:
        with pytest.raises(ValueError):
            parse_url_list(bad)
