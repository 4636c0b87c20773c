"""The agent's one HTTP/1.1 server core, bounded for a LAN: the mirror and the build cache.

http.server's ThreadingHTTPServer starts a thread per connection and lets it wait in
``readline()`` for as long as the client likes. Measured on the mirror: 3000 clients
that open a connection and never finish their headers keep ~2900 threads and ~100 MB
alive, and when they all hang up at once the threads' wake-ups starve ``/healthz`` for
10-20 s. This core holds a thread only while a request is being answered:

- One loop thread (``selectors``: epoll on Linux) accepts connections and reads request
  heads without blocking. A connection costs a socket and a small buffer until its head
  is complete; then it goes to a worker.
- A bounded pool of worker threads (started as needed, at most ``Limits.workers``) runs
  the handler, a ``BaseHTTPRequestHandler``, for one request. A kept-alive connection
  then goes back to the loop, so an idle client holds no thread either.
- At most ``Limits.max_connections`` connections are open. At the cap, the one that has
  waited longest for a head (a slow client, an idle keep-alive) is closed to admit the
  new one: slow clients make way, new ones (a health check) get in.
- A head must be complete within ``header_timeout`` of its first byte or of the accept
  (nginx's client_header_timeout), an idle keep-alive connection is closed after
  ``idle_timeout`` (nginx's keepalive_timeout), a head over ``MAX_HEAD_BYTES`` gets 431,
  and when ``max_queued`` complete requests already wait for a worker, 503.
- ``fast_answer``: a server may answer a complete head in the loop itself (``/healthz``,
  ``/metrics``, small cached answers). The answer is written without blocking (what the
  client does not take yet waits in a buffer), so it never queues behind busy workers
  or slow clients.

Subclass ``Server`` (as one would ThreadingHTTPServer), pass a handler class, and
override ``fast_service_answer`` (``fast_answer`` itself answers the allowlist's 403,
/healthz and /metrics first). Standard library only.
"""

from __future__ import annotations

import collections
import contextlib
import email.utils
import ipaddress
import json
import os
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from types import FrameType
from typing import Any, Protocol

from gotune.agent import prom

# Connections open at once. Each costs a socket and a small buffer (not a thread), so
# a thousand is cheap; beyond it the longest-waiting head is dropped for a new client.
MAX_CONNECTIONS = 1024
# Worker threads answering requests at once: a build or `go mod download` on a few
# dozen developer machines; each blocked worker is one upstream fetch or slow reader.
WORKERS = 32
# Seconds for a whole request head (nginx's client_header_timeout is 60 s; Go's HTTP
# client writes its head in one go, so 10 s only ever cuts off a stalled or hostile one).
HEADER_TIMEOUT = 10.0
# Seconds an idle keep-alive connection stays open (nginx: 75 s, Go's client keeps idle
# connections 90 s and retries an idempotent request on one the server closed).
IDLE_TIMEOUT = 60.0
# Seconds a worker waits on one read or write of a body before it gives the client up.
IO_TIMEOUT = 60.0
# Complete requests waiting for a worker before new ones get 503 (a burst of a whole
# build's requests fits; a flood does not grow memory without bound).
MAX_QUEUED = 512
# The largest request head (request line and headers); nginx's default buffers hold 8 KiB,
# http.server reads lines up to 64 KiB.
MAX_HEAD_BYTES = 64 * 1024
# Pending connections the kernel queues before accept: many clients connect at once.
LISTEN_BACKLOG = 512
# How often expired connections are looked for (seconds): timeouts are whole seconds,
# a tenth of one is precise enough and a sweep over thousands costs well under 1 ms.
SWEEP_INTERVAL = 0.1
# Bytes read from a socket per recv() while a head is incomplete.
RECV_BYTES = 64 * 1024
# Connections accepted per readiness event before other sockets get their turn.
ACCEPT_BATCH = 64

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


@dataclass(frozen=True)
class Limits:
    """The bounds of one server (see the module docstring); the defaults suit a LAN.

    + max_connections: connections open at once
    + workers: threads answering requests at once
    + header_timeout: seconds for a complete request head
    + idle_timeout: seconds an idle keep-alive connection is kept
    + io_timeout: seconds a worker waits on one read or write of a body
    + max_queued: complete requests waiting for a worker before 503
    """

    max_connections: int = MAX_CONNECTIONS
    workers: int = WORKERS
    header_timeout: float = HEADER_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    io_timeout: float = IO_TIMEOUT
    max_queued: int = MAX_QUEUED


@dataclass(frozen=True)
class Head:
    """A complete request head as the loop parsed it (for ``fast_answer``)."""

    method: str
    target: str
    version: str
    headers: dict[str, str]  # names in lower case
    keep_alive: bool


def parse_head(raw: bytes) -> Head | None:
    """The request line and headers of ``raw`` (ending in a blank line); None if malformed.

    A malformed head goes to a worker, whose BaseHTTPRequestHandler answers it 400.
    """
    lines = raw.decode("latin-1").replace("\r\n", "\n").split("\n")
    parts = lines[0].split()
    if len(parts) != 3 or parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            return None
        headers[name.lower()] = value.strip()
    connection = headers.get("connection", "").lower()
    keep = connection != "close" if parts[2] == "HTTP/1.1" else connection == "keep-alive"
    return Head(parts[0], parts[1], parts[2], headers, keep)


def response(
    code: int,
    content_type: str,
    body: bytes,
    server: str,
    send_body: bool = True,
    close: bool = False,
    headers: Iterable[tuple[str, str]] = (),
    length: int | None = None,
) -> bytes:
    """A whole HTTP/1.1 response as bytes, with the headers BaseHTTPRequestHandler sends.

    + server: the Server header
    + send_body: False for HEAD (the length is still the body's)
    + close: add ``Connection: close``
    + headers: more (name, value) pairs
    + length: the Content-Length when ``body`` is not given (a HEAD answer)
    """
    phrase = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else ""
    lines = [
        f"HTTP/1.1 {code} {phrase}",
        f"Server: {server}",
        f"Date: {email.utils.formatdate(usegmt=True)}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body) if length is None else length}",
        *(f"{name}: {value}" for name, value in headers),
    ]
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if send_body else head


def text_response(code: int, message: str, server: str, send_body: bool = True,
                  close: bool = False) -> bytes:
    """A one-line plain-text response (the agent's error bodies)."""
    line = message.replace("\n", " ").replace("\r", " ")[:1000] + "\n"
    return response(code, "text/plain; charset=utf-8", line.encode(), server, send_body, close)


class _Conn:
    """One client connection and where it is: waiting for a head, writing, or in a worker."""

    __slots__ = ("addr", "buf", "close_after", "deadline", "out", "sock", "started")

    def __init__(self, sock: socket.socket, addr: tuple[str, int], now: float,
                 timeout: float) -> None:
        self.sock = sock
        self.addr = addr
        self.buf = bytearray()
        self.out: memoryview | None = None  # a loop-written answer not yet sent
        self.deadline = now + timeout
        self.started = False  # a byte of the current head has arrived
        self.close_after = False


class _Stream:
    """The handler's ``rfile``: the bytes the loop already read, then the socket.

    Reads never go past what was asked, so what is left after one request (a pipelined
    next head) can go back to the loop with ``leftover``.
    """

    def __init__(self, sock: socket.socket, initial: bytes) -> None:
        self._sock = sock
        self._buf = bytearray(initial)
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        data = self._sock.recv(RECV_BYTES)
        if not data:
            self.eof = True
            return False
        self._buf += data
        return True

    def readline(self, limit: int = -1) -> bytes:
        while True:
            end = self._buf.find(b"\n")
            if end >= 0 and (limit < 0 or end < limit):
                return self._take(end + 1)
            if 0 <= limit <= len(self._buf) or not self._fill():
                return self._take(len(self._buf) if limit < 0 else min(limit, len(self._buf)))

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            while self._fill():
                pass
            return self._take(len(self._buf))
        while len(self._buf) < size and self._fill():
            pass
        return self._take(min(size, len(self._buf)))

    def readinto(self, target: bytearray | memoryview) -> int:
        if not self._buf:
            self._fill()
        data = self._take(min(len(target), len(self._buf)))
        target[: len(data)] = data
        return len(data)

    def _take(self, n: int) -> bytes:
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def leftover(self) -> bytes:
        return bytes(self._buf)

    def close(self) -> None:
        """The connection's lifetime is the server's business."""


class _Writer:
    """The handler's ``wfile``: unbuffered writes straight to the socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        """The connection's lifetime is the server's business."""


class Handler(BaseHTTPRequestHandler):
    """What the agent's handlers share: HTTP/1.1, quiet logs, one-line text errors,
    the client allowlist."""

    protocol_version = "HTTP/1.1"
    server: Server  # type: ignore[assignment]  # ours, not a socketserver.BaseServer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: metrics count requests; the servers log errors themselves."""

    def version_string(self) -> str:
        return self.server.server_name_header

    def allowed(self) -> bool:
        """Whether the client's address is in the server's allowlist (no list: everyone)."""
        return self.server.allowed(self.client_address[0])

    def headers_out(self, code: int, ctype: str, length: int | None,
                    extra: Iterable[tuple[str, str]] = ()) -> None:
        """Status and headers; without a length the connection closes after the body."""
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        for name, value in extra:
            self.send_header(name, value)
        if length is None:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def answer_common(self, send_body: bool) -> tuple[str, int] | None:
        """A 403 for a client outside the allowlist, or /healthz and /metrics: (what
        ``requests_total`` counts it as, the code). None: the service answers."""
        if not self.allowed():
            # A request body (a PUT) stays unread: it must not be parsed as the next request.
            self.close_connection = True
            return "other", self.text(403, self.server.forbidden_message, send_body)
        if (self.server.service is not None and self.command in ("GET", "HEAD")
                and self.path in BUILTIN_PATHS):
            ctype, data = self.server.builtin(self.path)
            self.headers_out(200, ctype, len(data))
            if send_body:
                self.wfile.write(data)
                self.server.count_served(len(data))
            return self.path[1:], 200
        return None

    def text(self, code: int, message: str, send_body: bool) -> int:
        """A one-line plain-text answer; returns ``code``."""
        line = message.replace("\n", " ").replace("\r", " ")[:1000] + "\n"
        data = line.encode()
        self.headers_out(code, "text/plain; charset=utf-8", len(data))
        if send_body:
            self.wfile.write(data)
        return code


METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Answered by the core for every service (``Server.builtin``).
BUILTIN_PATHS = ("/healthz", "/metrics")
# The core's own metrics, which each service declares beside its own (its prefix first).
HTTP_METRICS: dict[str, tuple[str, str]] = {
    "http_connections": ("gauge", "Client connections open."),
    "http_events_total": (
        "counter", "What the server's limits did: connections evicted at the cap, header "
        "timeouts, idle closes, requests turned away (503), answered by the loop."
    ),
}
# The core's event counters shown as <prefix>http_events_total{event=...}.
HTTP_EVENTS = ("evicted_total", "header_timeouts_total", "idle_closed_total",
               "rejected_total", "fast_total")


class Service(Protocol):
    """What a server serves /healthz and /metrics of (the mirror, the build cache)."""

    @property
    def metrics(self) -> prom.Metrics: ...

    def health(self) -> dict[str, Any]: ...

    def refresh_gauges(self) -> None: ...


class Server:
    """Serve ``handler_class`` on ``address`` within ``limits`` (see the module docstring).

    + address: (host, port); port 0 picks a free one (``server_address`` tells which)
    + handler_class: a BaseHTTPRequestHandler subclass; ``self.server`` is this object
    + limits: the bounds
    + allow: client networks allowed (None: all); others get 403 (``allowed``)
    + service: what /healthz and /metrics describe (``builtin``), with the core's own figures
    """

    # The Server header of answers written by the loop (handlers use version_string).
    server_name_header = "gotune"
    # A 403's text, and the label the service's requests_total counts requests by.
    forbidden_message = "forbidden: client not in the allowlist"
    request_label = "kind"

    def __init__(
        self,
        address: tuple[str, int],
        handler_class: type[BaseHTTPRequestHandler],
        limits: Limits | None = None,
        allow: Sequence[Network] | None = None,
        service: Service | None = None,
    ) -> None:
        self.service = service
        self.handler_class = handler_class
        self.limits = limits or Limits()
        self.allow = allow
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind(address)
            self._listener.listen(LISTEN_BACKLOG)
        except OSError:
            self._listener.close()
            raise
        self._listener.setblocking(False)
        self.server_address: tuple[str, int] = self._listener.getsockname()[:2]
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._lock = threading.Lock()
        self._returned: collections.deque[tuple[_Conn, bytes]] = collections.deque()
        self._work: collections.deque[_Conn] = collections.deque()
        self._work_ready = threading.Condition(self._lock)
        self._waiting: dict[_Conn, None] = {}  # reading a head, oldest first
        self._writing: set[_Conn] = set()
        self._in_workers = 0
        self._workers = 0
        self._idle_workers = 0
        self._running = threading.Event()
        self._stopped = threading.Event()
        self._stop = False
        self._workers_exit = False
        self._closed = False
        self.counters: collections.Counter[str] = collections.Counter()

    # -- for subclasses ----------------------------------------------------------------
    def fast_answer(self, head: Head, client: tuple[str, int]) -> bytes | None:
        """The whole response for ``head`` if it can be given at once, without blocking
        (None sends the request to a worker): a 403, /healthz and /metrics here, the
        service's own in ``fast_service_answer``; each counted as a worker counts it."""
        send_body = head.method == "GET"
        name = self.server_name_header
        if not self.allowed(client[0]):
            self.count("other", 403)
            return text_response(403, self.forbidden_message, name, send_body)
        if self.service is not None and head.target in BUILTIN_PATHS:
            ctype, page = self.builtin(head.target)
            self.count(head.target[1:], 200)
            self.count_served(len(page) * send_body)
            return response(200, ctype, page, name, send_body)
        return self.fast_service_answer(head, send_body)

    def fast_service_answer(self, head: Head, send_body: bool) -> bytes | None:
        """The service's part of ``fast_answer``: from memory or a small file."""
        return None

    def count(self, kind: str, code: int) -> None:
        """One answered request in the service's ``requests_total``."""
        if self.service is not None:
            labels = {self.request_label: kind, "code": str(code)}
            self.service.metrics.inc("requests_total", 1.0, **labels)

    def count_served(self, n: int) -> None:
        """Body bytes sent, in the service's ``served_bytes_total``."""
        if n and self.service is not None:
            self.service.metrics.inc("served_bytes_total", n)

    def allowed(self, client: str) -> bool:
        """Whether ``client`` (an IP address) is in ``allow`` (None: everyone is)."""
        if not self.allow:
            return True
        try:
            addr = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(addr in net for net in self.allow)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client hanging up or timing out is normal; anything else is logged."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        print(f"gotune: error answering {client_address}:", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)

    def builtin(self, path: str) -> tuple[str, bytes]:
        """(content type, body) of /healthz (the service's health and ``stats``) or
        /metrics (the service's and the core's, ``HTTP_METRICS``)."""
        assert self.service is not None, "a server with /healthz and /metrics has a service"
        stats = self.stats()
        if path == "/healthz":
            health = self.service.health() | {"http": stats}
            return "application/json", (json.dumps(health, sort_keys=True) + "\n").encode()
        metrics = self.service.metrics
        metrics.set("http_connections", float(stats["connections"]))
        for event in HTTP_EVENTS:
            metrics.set("http_events_total", float(stats.get(event, 0)),
                        event=event.removesuffix("_total"))
        self.service.refresh_gauges()
        return METRICS_TYPE, metrics.render().encode()

    def stats(self) -> dict[str, int]:
        """Open connections by state, workers, and what the limits turned away."""
        with self._lock:
            return {
                "connections": len(self._waiting) + len(self._writing) + self._in_workers,
                "waiting_for_head": len(self._waiting),
                "in_workers": self._in_workers,
                "queued": len(self._work),
                "workers": self._workers,
                **{k: int(v) for k, v in self.counters.items()},
            }

    # -- life cycle --------------------------------------------------------------------
    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Run the loop in this thread until ``shutdown``."""
        self._selector.register(self._listener, _READ, "listener")
        self._selector.register(self._wake_r, _READ, "wake")
        self._running.set()
        next_sweep = time.monotonic() + SWEEP_INTERVAL
        try:
            while not self._stop:
                timeout = min(poll_interval, max(0.0, next_sweep - time.monotonic()))
                for key, mask in self._selector.select(timeout):
                    self._event(key.data, mask)
                now = time.monotonic()
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + SWEEP_INTERVAL
        finally:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(self._listener)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(self._wake_r)
            self._running.clear()
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop the loop and wait for ``serve_forever`` to return (at once if not running)."""
        self._stop = True
        self._wake()
        if self._running.is_set():
            self._stopped.wait()

    def server_close(self) -> None:
        """Close the listener, every connection the loop holds, and stop the workers."""
        if self._closed:
            return
        self._closed = True
        self._stop = True
        self._listener.close()
        for conn in list(self._waiting) + list(self._writing):
            self._close(conn)
        with self._lock:
            for conn in self._work:
                conn.sock.close()
            self._work.clear()
            self._workers_exit = True
            self._work_ready.notify_all()
        self._selector.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- the loop ----------------------------------------------------------------------
    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def _event(self, what: object, mask: int) -> None:
        if what == "listener":
            self._accept()
        elif what == "wake":
            with contextlib.suppress(BlockingIOError, OSError):
                while os.read(self._wake_r, 4096):
                    pass
            self._take_returned()
        elif isinstance(what, _Conn):
            if mask & _WRITE:
                self._send(what)
            elif mask & _READ:
                self._read(what)

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of file descriptors, ...: the backlog keeps them
                self.counters["accept_errors_total"] += 1
                return
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            now = time.monotonic()
            conn = _Conn(sock, addr, now, self.limits.header_timeout)
            if self._open() >= self.limits.max_connections and not self._evict():
                self.counters["rejected_total"] += 1
                self._answer(conn, text_response(503, "busy: too many connections",
                                                 self.server_name_header, close=True))
                continue
            self.counters["accepted_total"] += 1
            self._wait_for_head(conn, self.limits.header_timeout, now)

    def _open(self) -> int:
        return len(self._waiting) + len(self._writing) + self._in_workers

    def _evict(self) -> bool:
        """Close the connection that has waited longest for a head; False if none waits."""
        for conn in self._waiting:
            self.counters["evicted_total"] += 1
            self._close(conn)
            return True
        return False

    def _wait_for_head(self, conn: _Conn, timeout: float, now: float) -> None:
        conn.deadline = now + timeout
        conn.started = bool(conn.buf)
        self._waiting[conn] = None
        try:
            self._selector.register(conn.sock, _READ, conn)
        except (ValueError, OSError):
            self._close(conn)
            return
        if conn.buf:
            self._parse(conn)

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        if not conn.started:  # the header timeout runs from the first byte of a new head
            conn.started = True
            conn.deadline = time.monotonic() + self.limits.header_timeout
        conn.buf += data
        self._parse(conn)

    def _parse(self, conn: _Conn) -> None:
        buf = conn.buf
        while buf[:2] == b"\r\n" or buf[:1] == b"\n":  # stray line ends between requests
            del buf[: 2 if buf[:1] == b"\r" else 1]
        end = buf.find(b"\r\n\r\n")
        size = end + 4
        alt = buf.find(b"\n\n")
        if alt >= 0 and (end < 0 or alt < end):
            end, size = alt, alt + 2
        if end < 0:
            if len(buf) > MAX_HEAD_BYTES:
                self.counters["too_large_total"] += 1
                self._detach(conn)
                self._answer(conn, text_response(431, "request head too large",
                                                 self.server_name_header, close=True))
            return
        head = parse_head(bytes(buf[:size]))
        answer = None
        if head is not None and head.method in ("GET", "HEAD"):
            try:
                answer = self.fast_answer(head, conn.addr)
            except Exception:  # a bug in a fast path: let a worker answer (and log) instead
                traceback.print_exc(file=sys.stderr)
                answer = None
        self._detach(conn)
        if answer is not None:
            del buf[:size]
            self.counters["fast_total"] += 1
            conn.close_after = not head.keep_alive if head is not None else True
            self._answer(conn, answer, keep=not conn.close_after)
            return
        self._dispatch(conn)

    def _detach(self, conn: _Conn) -> None:
        """Take ``conn`` out of the selector and the waiting list (it moves on)."""
        self._waiting.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(conn.sock)

    def _answer(self, conn: _Conn, data: bytes, keep: bool = False) -> None:
        """Write ``data`` without blocking; the rest waits for the socket to drain."""
        conn.close_after = not keep
        conn.out = memoryview(data)
        if self._send(conn):
            return
        conn.deadline = time.monotonic() + self.limits.io_timeout
        self._writing.add(conn)
        try:
            self._selector.register(conn.sock, _WRITE, conn)
        except (ValueError, OSError):
            self._close(conn)

    def _send(self, conn: _Conn) -> bool:
        """Send what is buffered; True when it is all out (and the connection moved on)."""
        out = conn.out
        assert out is not None
        try:
            while out:
                n = conn.sock.send(out)
                out = out[n:]
        except (BlockingIOError, InterruptedError):
            conn.out = out
            return False
        except OSError:
            self._close(conn)
            return True
        conn.out = None
        self._writing.discard(conn)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(conn.sock)
        if conn.close_after:
            self._close(conn)
        else:
            self._wait_for_head(conn, self.limits.idle_timeout, time.monotonic())
        return True

    def _dispatch(self, conn: _Conn) -> None:
        with self._lock:
            if len(self._work) >= self.limits.max_queued:
                busy = True
            else:
                busy = False
                self._work.append(conn)
                self._in_workers += 1
                if self._idle_workers == 0 and self._workers < self.limits.workers:
                    self._workers += 1
                    threading.Thread(target=self._worker, name="http-worker",
                                     daemon=True).start()
                self._work_ready.notify()
        if busy:
            self.counters["rejected_total"] += 1
            self._answer(conn, text_response(503, "busy: too many requests waiting",
                                             self.server_name_header, close=True))

    def _take_returned(self) -> None:
        now = time.monotonic()
        while True:
            try:
                conn, leftover = self._returned.popleft()
            except IndexError:
                return
            if self._stop:
                conn.sock.close()
                continue
            try:
                conn.sock.setblocking(False)
            except OSError:
                conn.sock.close()
                continue
            conn.buf = bytearray(leftover)
            timeout = self.limits.header_timeout if leftover else self.limits.idle_timeout
            self._wait_for_head(conn, timeout, now)

    def _sweep(self, now: float) -> None:
        expired = [c for c in self._waiting if c.deadline <= now]
        expired += [c for c in self._writing if c.deadline <= now]
        for conn in expired:
            self.counters["header_timeouts_total" if conn.started else "idle_closed_total"] += 1
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        self._waiting.pop(conn, None)
        self._writing.discard(conn)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(conn.sock)
        with contextlib.suppress(OSError):
            conn.sock.close()

    # -- workers -----------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            with self._lock:
                self._idle_workers += 1
                while not self._work and not self._workers_exit:
                    self._work_ready.wait()
                self._idle_workers -= 1
                if self._workers_exit:
                    self._workers -= 1
                    return
                conn = self._work.popleft()
            leftover = self._serve(conn)
            with self._lock:
                self._in_workers -= 1
            if leftover is None:
                with contextlib.suppress(OSError):
                    conn.sock.close()
            else:
                self._returned.append((conn, leftover))
                self._wake()

    def _serve(self, conn: _Conn) -> bytes | None:
        """Answer one request on ``conn``; the bytes after it when the connection stays."""
        sock = conn.sock
        stream = _Stream(sock, bytes(conn.buf))
        handler = self.handler_class.__new__(self.handler_class)
        handler.server = self  # type: ignore[assignment]
        handler.request = sock
        handler.connection = sock
        handler.client_address = conn.addr
        handler.rfile = stream  # type: ignore[assignment]
        handler.wfile = _Writer(sock)  # type: ignore[assignment]
        handler.close_connection = True
        try:
            sock.setblocking(True)
            sock.settimeout(self.limits.io_timeout)
            handler.handle_one_request()
        except Exception:
            self.handle_error(sock, conn.addr)
            return None
        if handler.close_connection or stream.eof or self._stop:
            return None
        return stream.leftover()




def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:3000`` / ``[::1]:3000`` -> (host, port); ValueError if malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid --listen {text!r} (use ADDR:PORT)")
    host = host.strip("[]") or "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ValueError(f"invalid --listen address {host!r} (use an IP address)") from None
    return host, int(port)


def parse_allow(text: str | None) -> list[Network] | None:
    """``10.0.0.0/24,192.168.1.5`` -> networks (None for none); ValueError if malformed."""
    if not text:
        return None
    nets: list[Network] = []
    for item in text.split(","):
        try:
            nets.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"invalid --allow entry {item.strip()!r} (use CIDR, e.g. 10.0.0.0/24)"
            ) from None
    return nets


def serve_until_stopped(server: Server, cleanup: Callable[[], None]) -> None:
    """Serve until SIGTERM/SIGINT, then close the server and run ``cleanup``."""
    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        cleanup()
