"""Upstream proxies: the GOPROXY URL list and a pooled, rate-limited HTTP client.

URL list semantics are Go's: after ``,`` the next proxy is tried only when this one
answers 404 or 410; after ``|`` it is tried on any error. ``direct`` and ``off``
end the list: the mirror has no version control tools, so it cannot fetch
``direct`` itself (the go command on the developer's machine still can, which is
why the deployed GOPROXY is ``http://127.0.0.1:PORT|<upstream>,direct``).
Upstreams may be ``http://``, ``https://`` or ``file://`` (a GOPROXY tree on disk).
"""

from __future__ import annotations

import http.client
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from gotune.agent.mirror.limits import TokenBucket
from gotune.agent.mirror.metrics import Metrics

# Read size for upstream bodies: large enough for few syscalls, small enough that
# a rate limit is applied smoothly.
CHUNK = 256 * 1024
# Most bytes of a 404/410 body kept for the error message.
MAX_ERROR_BODY = 4096
# Idle keep-alive connections kept per upstream host.
MAX_IDLE_PER_HOST = 8


class NotFound(Exception):
    """Every upstream said 404/410 (or the list ended in ``off``/``direct``)."""


class UpstreamFailed(Exception):
    """An upstream failed in a way that is not "not found" (5xx, timeout, truncation)."""


@dataclass(frozen=True)
class Entry:
    url: str
    fallback_on_error: bool  # the separator after this entry was '|'


def parse_url_list(text: str) -> list[Entry]:
    """Parse a GOPROXY-style list; ``direct``/``off`` end it. ValueError if malformed."""
    entries: list[Entry] = []
    item = ""
    items: list[tuple[str, str]] = []
    for ch in text:
        if ch in ",|":
            items.append((item.strip(), ch))
            item = ""
        else:
            item += ch
    items.append((item.strip(), ""))
    for url, sep in items:
        if not url:
            raise ValueError(f"empty entry in upstream list {text!r}")
        if url in ("direct", "off"):
            break
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "file"):
            raise ValueError(f"upstream {url!r} must be http://, https:// or file://")
        if parts.scheme != "file" and not parts.hostname:
            raise ValueError(f"upstream {url!r} has no host")
        entries.append(Entry(url.rstrip("/"), sep == "|"))
    return entries


class Body:
    """An open upstream response body: read it in chunks, then close()."""

    def __init__(
        self,
        source: str,
        length: int | None,
        reader: BinaryIO | http.client.HTTPResponse,
        done: _Done,
        upstream: Upstream,
    ) -> None:
        self.source = source
        self.length = length
        self._reader = reader
        self._done = done
        self._upstream = upstream
        self.received = 0
        self._closed = False

    def read(self, n: int = CHUNK) -> bytes:
        """Up to n bytes (b'' at the end); UpstreamFailed when truncated or stalled."""
        try:
            data = self._reader.read(n)
        except (http.client.IncompleteRead, OSError, http.client.HTTPException) as exc:
            self._upstream.error("truncated" if isinstance(exc, http.client.IncompleteRead)
                                 else "read")
            raise UpstreamFailed(f"{self.source}: body read failed: {exc!r}") from exc
        if data:
            self.received += len(data)
            self._upstream.got_bytes(len(data))
        elif self.length is not None and self.received < self.length:
            self._upstream.error("truncated")
            raise UpstreamFailed(f"{self.source}: truncated after {self.received} bytes")
        return data

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        complete = self.length is not None and self.received >= self.length
        self._done(complete)


class _Done:
    """Returns a keep-alive connection to the pool once its body was fully read."""

    def __init__(self, pool: _Pool | None, key: tuple[str, str, int], conn: object) -> None:
        self._pool, self._key, self._conn = pool, key, conn

    def __call__(self, complete: bool) -> None:
        conn = self._conn
        if isinstance(conn, http.client.HTTPConnection):
            if complete and self._pool is not None:
                self._pool.put(self._key, conn)
            else:
                conn.close()
        elif hasattr(conn, "close"):
            conn.close()


class _Pool:
    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, int]) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop(), True
        scheme, host, port = key
        cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        return cls(host, port, timeout=self._timeout), False

    def put(self, key: tuple[str, str, int], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < MAX_IDLE_PER_HOST:
                idle.append(conn)
                return
        conn.close()


class Upstream:
    """Fetches GOPROXY paths from the URL list with Go's fallback rules and the limits."""

    def __init__(
        self,
        entries: list[Entry],
        timeout: float,
        metrics: Metrics,
        byte_bucket: TokenBucket | None = None,
        request_bucket: TokenBucket | None = None,
    ) -> None:
        self.entries = entries
        self.timeout = timeout
        self.metrics = metrics
        self.byte_bucket = byte_bucket
        self.request_bucket = request_bucket
        self._pool = _Pool(timeout)

    def error(self, reason: str) -> None:
        self.metrics.inc("upstream_errors_total", reason=reason)

    def got_bytes(self, n: int) -> None:
        self.metrics.inc("upstream_fetched_bytes_total", n)
        if self.byte_bucket is not None:
            self.byte_bucket.acquire(n)

    def open(self, path: str) -> Body:
        """Open ``path`` (e.g. ``/m/@v/list``) on the first upstream that has it."""
        failure: UpstreamFailed | None = None
        not_found = "not found upstream"
        if not self.entries:
            raise NotFound("no upstream configured (offline, or the list is only direct/off)")
        for entry in self.entries:
            try:
                return self._open_one(entry.url, path)
            except NotFound as exc:
                not_found = str(exc)
                continue
            except UpstreamFailed as exc:
                failure = failure or exc
                if entry.fallback_on_error:
                    continue
                raise
        if failure is not None:
            raise failure
        raise NotFound(not_found)

    def _open_one(self, base: str, path: str) -> Body:
        if self.request_bucket is not None:
            self.request_bucket.acquire(1)
        self.metrics.inc("upstream_requests_total")
        url = base + path
        parts = urlsplit(base)
        if parts.scheme == "file":
            return self._open_file(parts.path, path, url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.scheme, parts.hostname or "", port)
        target = parts.path + path
        for attempt in (0, 1):
            conn, reused = self._pool.get(key)
            try:
                conn.request("GET", target, headers={
                    "User-Agent": "gotune-mirror", "Accept-Encoding": "identity",
                })
                resp = conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                if reused and attempt == 0:
                    continue  # a stale keep-alive connection: retry once on a fresh one
                self.error("connect")
                raise UpstreamFailed(f"{url}: {exc!r}") from exc
            except TimeoutError as exc:
                conn.close()
                self.error("timeout")
                raise UpstreamFailed(f"{url}: timed out after {self.timeout:g}s") from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self.error("connect")
                raise UpstreamFailed(f"{url}: {exc!r}") from exc
            return self._answer(url, key, conn, resp)
        raise UpstreamFailed(f"{url}: connection failed")  # unreachable: loop returns/raises

    def _answer(
        self,
        url: str,
        key: tuple[str, str, int],
        conn: http.client.HTTPConnection,
        resp: http.client.HTTPResponse,
    ) -> Body:
        if resp.status == 200:
            length = resp.getheader("Content-Length")
            n = int(length) if length is not None and length.isdigit() else None
            return Body(url, n, resp, _Done(self._pool, key, conn), self)
        try:
            text = resp.read(MAX_ERROR_BODY).decode("utf-8", "replace").strip()
        except (OSError, http.client.HTTPException):
            text = ""
        conn.close()
        first = text.splitlines()[0] if text else ""
        if resp.status in (404, 410):
            raise NotFound(f"{url}: {resp.status} {first}".rstrip())
        self.error(f"http_{resp.status}")
        raise UpstreamFailed(f"{url}: HTTP {resp.status} {first}".rstrip())

    def _open_file(self, root: str, path: str, url: str) -> Body:
        base = Path(unquote(root))
        rel = path.lstrip("/")
        target = base / rel
        # Request paths are validated before they get here; stay inside the root anyway.
        if ".." in Path(rel).parts:
            raise NotFound(f"{url}: not found")
        try:
            fh = open(target, "rb")  # noqa: SIM115 - closed by Body.close via _Done
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(f"{url}: not found") from None
        except OSError as exc:
            self.error("read")
            raise UpstreamFailed(f"{url}: {exc}") from exc
        size = os.fstat(fh.fileno()).st_size
        return Body(url, size, fh, _Done(None, ("file", "", 0), fh), self)
