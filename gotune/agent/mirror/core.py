"""Fetch-or-serve: the logic the HTTP server and ``mirror sync`` share.

An immutable artefact (.info/.mod/.zip of a canonical version) is served from
the cache, or fetched once (singleflight: concurrent requests for the same
artefact wait for one upstream fetch) and validated; clients get it at once
(small artefacts from memory, larger ones from their temp file) while the commit
thread writes, fsyncs and renames it into the cache. When caching is not allowed
(wear, a file bigger than the whole cache), each request is relayed from upstream
on its own, uncached.

``list`` and ``@latest`` are revalidated after ``list_ttl`` seconds and served
stale when every upstream fails; offline, ``list`` is the cache's own list.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from gotune.agent.mirror.limits import TokenBucket
from gotune.agent.mirror.metrics import Metrics
from gotune.agent.mirror.modpath import Request
from gotune.agent.mirror.store import (
    MAX_SIZE,
    MEMORY_FILL_MAX,
    InvalidArtefact,
    Store,
    validate,
    validate_data,
)
from gotune.agent.mirror.upstream import Body, Entry, NotFound, Upstream, UpstreamFailed
from gotune.agent.mirror.wearguard import LEDGER, WearGuard

# How long a list/@latest answer is fresh: a new tag shows up within a minute,
# while the many list lookups of one build are answered locally.
DEFAULT_LIST_TTL = 60.0
# Background zip prefetches at once: enough to overlap upstream latency, few enough
# not to crowd out the requests clients are waiting for.
PREFETCH_WORKERS = 4
# Upstream connect/read timeout: proxy.golang.org answers in well under a second;
# 30 s tolerates slow links without hanging a build forever.
DEFAULT_TIMEOUT = 30.0

T = TypeVar("T")


@dataclass
class _Call(Generic[T]):
    done: threading.Event = field(default_factory=threading.Event)
    result: T | None = None
    error: BaseException | None = None


class SingleFlight(Generic[T]):
    """Run ``fn`` once per key at a time; concurrent callers share its outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Call[T]] = {}

    def do(self, key: str, fn: Callable[[], T]) -> tuple[T, bool]:
        """(result, shared): shared is True for callers that waited on another's fetch."""
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
        if not leader:
            call.done.wait()
            if call.error is not None:
                raise call.error
            return call.result, True  # type: ignore[return-value]
        try:
            call.result = fn()
            return call.result, False
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()


@dataclass(frozen=True)
class Config:
    cache_dir: Path
    upstreams: list[Entry]
    limit_rate: int | None = None  # upstream bytes per second
    limit_requests: float | None = None  # upstream requests per second
    max_cache_size: int | None = None
    offline: bool = False
    list_ttl: float = DEFAULT_LIST_TTL
    timeout: float = DEFAULT_TIMEOUT
    wear_state: Path | None = None
    client_limit_rate: int | None = None  # bytes per second per client address
    prefetch: bool = True  # a .info request starts fetching that version's .zip


@dataclass
class Answer:
    """What to send: a cached file, bytes, or an upstream body to relay."""

    content_type: str
    path: Path | None = None
    data: bytes | None = None
    body: Body | None = None
    hit: bool = False
    stale: bool = False


def stored_answer(ctype: str, found: Path | bytes, hit: bool = False) -> Answer:
    """An answer for a stored artefact: its file, or its bytes while not yet committed."""
    if isinstance(found, bytes):
        return Answer(ctype, data=found, hit=hit)
    return Answer(ctype, path=found, hit=hit)


class NotCacheable(Exception):
    """The artefact may not be cached now (reason in the message); relay it."""


CONTENT_TYPES = {
    "zip": "application/zip", "mod": "text/plain; charset=utf-8",
    "info": "application/json", "latest": "application/json",
    "list": "text/plain; charset=utf-8",
}


class Mirror:
    """The cache, the upstreams and the limits, without any HTTP serving."""

    def __init__(self, config: Config, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.store = Store(config.cache_dir, self.metrics, config.max_cache_size)
        self.guard = WearGuard(config.wear_state, self.store.root / LEDGER, self.metrics)
        byte_bucket = request_bucket = None
        if config.limit_rate:
            byte_bucket = TokenBucket(config.limit_rate, on_wait=self._waited("bytes"))
        if config.limit_requests:
            request_bucket = TokenBucket(
                config.limit_requests, capacity=1.0, on_wait=self._waited("requests")
            )
        self.upstream = Upstream(
            [] if config.offline else config.upstreams,
            config.timeout, self.metrics, byte_bucket, request_bucket,
        )
        self._flight: SingleFlight[Path | bytes] = SingleFlight()
        self._meta_flight: SingleFlight[bytes] = SingleFlight()
        self._meta_mem: dict[str, tuple[bytes, float]] = {}
        self._meta_lock = threading.Lock()
        self._prefetcher: ThreadPoolExecutor | None = None
        if config.prefetch and not config.offline:
            self._prefetcher = ThreadPoolExecutor(PREFETCH_WORKERS, "mirror-prefetch")
        self._prefetching: set[str] = set()

    def _waited(self, limit: str) -> Callable[[float], None]:
        def record(seconds: float) -> None:
            self.metrics.inc("rate_limit_wait_seconds_total", seconds, limit=limit)

        return record

    # -- immutable artefacts -----------------------------------------------------------
    def get(self, req: Request) -> Answer:
        """Answer one GOPROXY request; raises NotFound or UpstreamFailed."""
        if req.kind in ("list", "latest"):
            return self._get_meta(req)
        ctype = CONTENT_TYPES[req.kind]
        if not req.canonical:
            return Answer(ctype, data=self._fetch_small(req))
        found, may_write = self._lookup(req)
        if found is not None:
            self.metrics.inc("cache_hits_total", kind=req.kind)
            return stored_answer(ctype, found, hit=True)
        self.metrics.inc("cache_misses_total", kind=req.kind)
        if self.config.offline:
            raise NotFound(f"{req.module}@{req.version} {req.kind} is not cached (offline)")
        if may_write:
            try:
                filled, _ = self._flight.do(req.key(), lambda: self.fill(req))
                return stored_answer(ctype, filled)
            except NotCacheable as exc:
                self.metrics.inc("not_cached_total", reason=str(exc).split(":", 1)[0])
        else:
            self.metrics.inc("not_cached_total", reason="wear")
        return Answer(ctype, body=self._open_checked(req))

    def _lookup(self, req: Request) -> tuple[Path | bytes | None, bool]:
        """(the cached artefact or None, whether the cache may be written now); a
        version's .info starts the prefetch of its .zip."""
        may_write, _ = self.guard.may_write()
        if req.kind == "info" and may_write:
            self._prefetch_zip(req)
        return self.store.lookup(req, may_write), may_write

    def cached(self, req: Request, limit: int) -> Answer | None:
        """A cached immutable artefact of at most ``limit`` bytes, read into memory and
        counted as a hit; None when it is not cached, larger, or not immutable (then
        ``get`` answers). Never touches upstream: the server answers with it at once."""
        if req.kind in ("list", "latest") or not req.canonical:
            return None
        current = self.store.current(req)
        try:
            if current is None or (len(current) if isinstance(current, bytes)
                                   else current.stat().st_size) > limit:
                return None
            found, _ = self._lookup(req)
            if found is None:
                return None
            data = found if isinstance(found, bytes) else found.read_bytes()
        except (FileNotFoundError, NotADirectoryError):  # evicted or committed meanwhile
            return None
        self.metrics.inc("cache_hits_total", kind=req.kind)
        return Answer(CONTENT_TYPES[req.kind], data=data, hit=True)

    def _prefetch_zip(self, info: Request) -> None:
        """Start fetching the .zip of a version whose .info was asked for.

        ``go mod download`` and ``go get`` ask for a version's .info and then, a
        moment later, its .zip; ``go build`` never asks for .info of a pinned
        version, so it triggers nothing. The zip is fetched like any miss
        (singleflight, limits, wear), and the client's own request joins the flight.
        """
        if self._prefetcher is None:
            return
        zreq = Request("zip", info.module, info.version)
        key = zreq.key()
        with self._meta_lock:
            if key in self._prefetching:
                return
            self._prefetching.add(key)
        if self.store.current(zreq) is not None:
            with self._meta_lock:
                self._prefetching.discard(key)
            return
        try:
            self._prefetcher.submit(self._prefetch_one, zreq)
        except RuntimeError:  # shutting down
            with self._meta_lock:
                self._prefetching.discard(key)

    def _prefetch_one(self, zreq: Request) -> None:
        try:
            self._flight.do(zreq.key(), lambda: self.fill(zreq))
            self.metrics.inc("prefetches_total", outcome="ok")
        except (NotFound, UpstreamFailed, NotCacheable, OSError):
            self.metrics.inc("prefetches_total", outcome="failed")
        finally:
            with self._meta_lock:
                self._prefetching.discard(zreq.key())

    def _open_checked(self, req: Request) -> Body:
        body = self.upstream.open(req.upstream_path())
        if body.length is not None and body.length > MAX_SIZE[req.kind]:
            body.close()
            raise UpstreamFailed(f"{body.source}: {body.length} bytes is over Go's limit")
        return body

    def fill(self, req: Request) -> Path | bytes:
        """Fetch one artefact from upstream into the cache (the singleflight leader).

        Returns what to serve until the commit thread has it on disk: the validated
        bytes (small artefacts, fetched into memory) or the validated temp file.
        """
        existing = self.store.current(req)
        if existing is not None:  # another flight stored it just before we started
            return existing
        body = self._open_checked(req)
        tmp: Path | None = None
        reserved = 0
        try:
            if body.length is not None:
                ok, why = self.guard.may_write(body.length)
                if not ok:
                    raise NotCacheable(why)
                if not self.store.fits(body.length):
                    raise NotCacheable(f"size: {body.length} bytes exceeds --max-cache-size")
                if body.length <= MEMORY_FILL_MAX and self.store.reserve(body.length):
                    reserved = body.length
                    data = self._read_all(req, body)
                    try:
                        validate_data(req, data)
                    except InvalidArtefact as exc:
                        self.metrics.inc("invalid_upstream_total")
                        raise UpstreamFailed(f"{body.source}: {exc}") from None
                    # The commit thread writes, fsyncs and renames; served from memory now.
                    self.guard.count_write(len(data))
                    data = self.store.publish_data(
                        req, data, functools.partial(self.guard.record_write, counted=len(data)),
                        reserved,
                    )
                    reserved = 0
                    return data
            fd, tmp = self.store.open_tmp(req)
            limit = MAX_SIZE[req.kind]
            with os.fdopen(fd, "wb") as fh:
                while chunk := body.read():
                    fh.write(chunk)
                    if body.received > limit:
                        raise UpstreamFailed(f"{body.source}: over Go's {limit} byte limit")
            try:
                validate(req, tmp)
            except InvalidArtefact as exc:
                self.metrics.inc("invalid_upstream_total")
                raise UpstreamFailed(f"{body.source}: {exc}") from None
            size = tmp.stat().st_size
            if not self.store.fits(size):
                raise NotCacheable(f"size: {size} bytes exceeds --max-cache-size")
            # fsync + rename happen on the commit thread; the client is served now.
            self.guard.count_write(size)
            served = self.store.publish(
                req, tmp, functools.partial(self.guard.record_write, counted=size)
            )
            tmp = None
            return served
        finally:
            body.close()
            if reserved:
                self.store.release(reserved)
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()

    @staticmethod
    def _read_all(req: Request, body: Body) -> bytes:
        """The whole body in memory; UpstreamFailed past Go's size limit for the kind."""
        chunks = []
        while chunk := body.read():
            chunks.append(chunk)
            if body.received > MAX_SIZE[req.kind]:
                raise UpstreamFailed(f"{body.source}: answer too large")
        return b"".join(chunks)

    def _fetch_small(self, req: Request) -> bytes:
        """Read a small upstream answer (version queries, list, @latest) into memory."""
        body = self.upstream.open(req.upstream_path())
        try:
            return self._read_all(req, body)
        finally:
            body.close()

    # -- list and @latest ----------------------------------------------------------------
    def _meta_cached(self, req: Request) -> tuple[bytes, float] | None:
        with self._meta_lock:
            mem = self._meta_mem.get(req.key())
        return mem or self.store.meta_get(req)

    def _get_meta(self, req: Request) -> Answer:
        ctype = CONTENT_TYPES[req.kind]
        cached = self._meta_cached(req)
        if self.config.offline:
            self.metrics.inc("cache_hits_total", kind=req.kind)
            data = self.store.local_list(req) if req.kind == "list" else (
                cached[0] if cached else None)
            if data is None:
                raise NotFound(f"{req.module}: {req.kind} is not cached (offline)")
            return Answer(ctype, data=data, hit=True)
        if cached and time.time() - cached[1] < self.config.list_ttl:
            self.metrics.inc("cache_hits_total", kind=req.kind)
            return Answer(ctype, data=cached[0], hit=True)
        self.metrics.inc("cache_misses_total", kind=req.kind)
        try:
            data, _ = self._meta_flight.do(req.key(), lambda: self._refresh_meta(req))
            return Answer(ctype, data=data)
        except NotFound:
            local = self.store.local_list(req) if req.kind == "list" else None
            if local:
                return Answer(ctype, data=local, stale=True)
            raise
        except UpstreamFailed:
            stale = cached[0] if cached else (
                self.store.local_list(req) if req.kind == "list" else None)
            if stale is None:
                raise
            self.metrics.inc("stale_served_total", kind=req.kind)
            return Answer(ctype, data=stale, stale=True)

    def _refresh_meta(self, req: Request) -> bytes:
        data = self._fetch_small(req)
        if req.kind == "latest":
            try:
                info = json.loads(data)
            except ValueError:
                info = None
            if not isinstance(info, dict) or not isinstance(info.get("Version"), str):
                self.metrics.inc("invalid_upstream_total")
                raise UpstreamFailed(f"{req.module}: upstream @latest is not version JSON")
        else:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                self.metrics.inc("invalid_upstream_total")
                raise UpstreamFailed(f"{req.module}: upstream list is not text") from None
        now = time.time()
        with self._meta_lock:
            self._meta_mem[req.key()] = (data, now)
        if self.guard.may_write(len(data))[0]:
            with contextlib.suppress(OSError):
                self.store.meta_put(req, data)
        return data

    def relay_path(self, path: str) -> Body:
        """Open an arbitrary upstream path (sumdb pass-through); never cached."""
        return self.upstream.open(path)

    def close(self) -> None:
        """Finish prefetches and pending commits (call before exit)."""
        if self._prefetcher is not None:
            self._prefetcher.shutdown(wait=True, cancel_futures=True)
        self.store.drain()

    def refresh_gauges(self) -> None:
        """Bring the wear gauges up to date (before /metrics renders them)."""
        self.guard.may_write()

    def health(self) -> dict[str, Any]:
        stats = self.store.stats()
        out: dict[str, Any] = {
            "status": "ok",
            "offline": self.config.offline,
            "cache_dir": str(self.store.root),
            "cache_bytes": stats["bytes"],
            "cached_versions": stats["versions"],
            "max_cache_bytes": self.config.max_cache_size,
            "upstreams": [e.url for e in self.config.upstreams],
            "limit_rate": self.config.limit_rate,
            "limit_requests": self.config.limit_requests,
        }
        out.update(self.guard.health())
        if self.config.offline:
            out["caching"] = False
            out["caching_reason"] = "offline: serving only what is cached"
        return out
