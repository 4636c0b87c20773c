"""The mirror's HTTP server: GOPROXY protocol, /healthz, /metrics, sumdb pass-through.

Status codes: 200; 400 for a path that is not a module path/version; 403 for a
client outside ``--allow``; 404 for unknown or (offline) uncached; 502 when
upstream failed; 503 for an unexpected error inside the mirror. Never 500.
Error bodies are one line of plain text. Cached files go out with sendfile(2).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import socket
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from gotune.agent.mirror.core import Answer, Mirror, stored_answer
from gotune.agent.mirror.limits import TokenBucket
from gotune.agent.mirror.modpath import InvalidPath, decode_url_path, parse_request
from gotune.agent.mirror.upstream import NotFound, UpstreamFailed

# sendfile chunk while a per-client limit applies (small enough to pace smoothly).
PACED_CHUNK = 64 * 1024
# Pending connections the kernel queues for us: go fetches many modules at once.
LISTEN_BACKLOG = 512
# Per-client buckets kept before the table is reset (bounds memory on a LAN).
MAX_CLIENT_BUCKETS = 4096
# Idle keep-alive connections are closed after this many seconds.
IDLE_TIMEOUT = 120.0

_SUMDB = re.compile(r"^/sumdb/([a-z0-9.-]+(?::[0-9]+)?)/([A-Za-z0-9._/+!@-]*)$")


class MirrorServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        mirror: Mirror,
        allow: list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None = None,
    ) -> None:
        self.mirror = mirror
        self.allow = allow
        self.client_buckets: dict[str, TokenBucket] = {}
        self.client_lock = threading.Lock()
        host = address[0]
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """A client hanging up is normal; anything else is logged with its traceback."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)  # type: ignore[arg-type]

    def client_bucket(self, client: str) -> TokenBucket | None:
        rate = self.mirror.config.client_limit_rate
        if not rate:
            return None
        with self.client_lock:
            bucket = self.client_buckets.get(client)
            if bucket is None:
                if len(self.client_buckets) >= MAX_CLIENT_BUCKETS:
                    self.client_buckets.clear()
                bucket = self.client_buckets[client] = TokenBucket(
                    rate, on_wait=lambda s: self.mirror.metrics.inc(
                        "client_limit_wait_seconds_total", s)
                )
            return bucket


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: MirrorServer
    timeout = IDLE_TIMEOUT

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the metrics count requests; errors are logged by _handle."""

    def version_string(self) -> str:
        return "gotune-mirror"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's
        # algorithm and the client's delayed ACK stall each small response ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._handle(send_body=True)

    def do_HEAD(self) -> None:
        self._handle(send_body=False)

    def _allowed(self) -> bool:
        allow = self.server.allow
        if not allow:
            return True
        try:
            addr = ipaddress.ip_address(self.client_address[0])
        except ValueError:
            return False
        return any(addr in net for net in allow)

    def _handle(self, send_body: bool) -> None:
        metrics = self.server.mirror.metrics
        kind = "other"
        try:
            if not self._allowed():
                code = self._text(403, "forbidden: client not in the mirror's allowlist", send_body)
            elif self.path in ("/healthz", "/metrics"):
                kind = self.path[1:]
                code = self._builtin(send_body)
            elif self.path.startswith("/sumdb/"):
                kind = "sumdb"
                code = self._sumdb(send_body)
            else:
                code, kind = self._goproxy(send_body)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
            code = 499  # the client went away (nginx's convention); nothing to answer
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            # Headers may already be out: answer, then drop the connection either way.
            self.close_connection = True
            code = self._text(503, f"mirror error: {exc.__class__.__name__}", send_body)
        metrics.inc("requests_total", kind=kind, code=str(code))

    def _builtin(self, send_body: bool) -> int:
        mirror = self.server.mirror
        if self.path == "/healthz":
            data = (json.dumps(mirror.health(), sort_keys=True) + "\n").encode()
            return self._bytes(200, "application/json", data, send_body)
        mirror.guard.may_write()  # refresh wear gauges
        data = mirror.metrics.render().encode()
        return self._bytes(200, "text/plain; version=0.0.4; charset=utf-8", data, send_body)

    def _sumdb(self, send_body: bool) -> int:
        try:
            path = decode_url_path(self.path)
        except InvalidPath as exc:
            return self._text(400, f"bad request: {exc}", send_body)
        if not _SUMDB.match(path) or "/../" in path + "/" or "/./" in path + "/":
            return self._text(400, "bad request: malformed sumdb path", send_body)
        try:
            body = self.server.mirror.relay_path(self.path.split("?", 1)[0])
        except NotFound as exc:
            return self._text(404, f"not found: {exc}", send_body)
        except UpstreamFailed as exc:
            return self._text(502, f"upstream failed: {exc}", send_body)
        return self._relay(Answer("application/octet-stream", body=body), send_body)

    def _goproxy(self, send_body: bool) -> tuple[int, str]:
        try:
            req = parse_request(self.path)
        except InvalidPath as exc:
            return self._text(400, f"bad request: {exc}", send_body), "invalid"
        try:
            answer = self.server.mirror.get(req)
        except NotFound as exc:
            return self._text(404, f"not found: {exc}", send_body), req.kind
        except UpstreamFailed as exc:
            return self._text(502, f"upstream failed: {exc}", send_body), req.kind
        if answer.path is not None:
            try:
                return self._file(answer, send_body), req.kind
            except FileNotFoundError:
                # The temp file was committed (renamed) between lookup and open: serve
                # the stored file without counting a second request. Evicted: ask again.
                found = self.server.mirror.store.current(req)
                answer = (
                    stored_answer(answer.content_type, found, answer.hit)
                    if found is not None
                    else self.server.mirror.get(req)
                )
                if answer.path is not None:
                    return self._file(answer, send_body), req.kind
        if answer.data is not None:
            return self._bytes(200, answer.content_type, answer.data, send_body), req.kind
        return self._relay(answer, send_body), req.kind

    # -- writers -------------------------------------------------------------------------
    def _headers(self, code: int, ctype: str, length: int | None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        if length is None:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _text(self, code: int, message: str, send_body: bool) -> int:
        line = message.replace("\n", " ").replace("\r", " ")[:1000] + "\n"
        return self._bytes(code, "text/plain; charset=utf-8", line.encode(), send_body)

    def _bytes(self, code: int, ctype: str, data: bytes, send_body: bool) -> int:
        self._headers(code, ctype, len(data))
        if send_body:
            self._pace(len(data))
            self.wfile.write(data)
            self.server.mirror.metrics.inc("served_bytes_total", len(data))
        return code

    def _pace(self, n: int) -> None:
        bucket = self.server.client_bucket(self.client_address[0])
        if bucket is not None:
            bucket.acquire(n)

    def _file(self, answer: Answer, send_body: bool) -> int:
        assert answer.path is not None
        with open(answer.path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            self._headers(200, answer.content_type, size)
            if not send_body:
                return 200
            bucket = self.server.client_bucket(self.client_address[0])
            if bucket is None:
                sent = self.connection.sendfile(fh)
            else:
                sent = 0
                while sent < size:
                    n = min(PACED_CHUNK, size - sent)
                    bucket.acquire(n)
                    sent += self.connection.sendfile(fh, sent, n)
            self.server.mirror.metrics.inc("served_bytes_total", sent)
        return 200

    def _relay(self, answer: Answer, send_body: bool) -> int:
        body = answer.body
        assert body is not None
        try:
            self._headers(200, answer.content_type, body.length)
            if not send_body:
                return 200
            try:
                while chunk := body.read():
                    self._pace(len(chunk))
                    self.wfile.write(chunk)
                    self.server.mirror.metrics.inc("served_bytes_total", len(chunk))
            except UpstreamFailed:
                # Headers are out: the only honest signal left is a short body.
                self.close_connection = True
                traceback.print_exc(file=sys.stderr)
            return 200
        finally:
            body.close()


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


def run_forever(server: MirrorServer) -> None:
    """Serve until SIGTERM/SIGINT; in-flight temp files are cleaned at the next start."""
    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        server.mirror.close()
