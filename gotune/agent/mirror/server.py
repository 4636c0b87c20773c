"""The mirror's HTTP server: GOPROXY protocol, /healthz, /metrics, sumdb pass-through.

Status codes: 200; 400 for a path that is not a module path/version; 403 for a
client outside ``--allow``; 404 for unknown or (offline) uncached; 502 when
upstream failed; 503 for an unexpected error inside the mirror (or when the
server's limits turn a request away). Never 500. Error bodies are one line of
plain text. Cached files go out with sendfile(2).

Connections, threads and timeouts are the shared core's (``gotune.agent.httpserver``):
/healthz, /metrics and small cached artefacts are answered by its loop thread
(``fast_answer``), so they keep coming while workers wait on upstream or slow clients.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import threading
import traceback

from gotune.agent.httpserver import Handler as BaseHandler
from gotune.agent.httpserver import (
    Head,
    Limits,
    Server,
    response,
    serve_until_stopped,
)
from gotune.agent.mirror.core import Answer, Mirror, stored_answer
from gotune.agent.mirror.limits import TokenBucket
from gotune.agent.mirror.modpath import InvalidPath, decode_url_path, parse_request
from gotune.agent.mirror.upstream import NotFound, UpstreamFailed

# sendfile chunk while a per-client limit applies (small enough to pace smoothly).
PACED_CHUNK = 64 * 1024
# Per-client buckets kept before the table is reset (bounds memory on a LAN).
MAX_CLIENT_BUCKETS = 4096
# Workers: `go mod download` asks for many modules at once, and a worker waits
# for upstream on each miss (singleflight waiters too).
MIRROR_LIMITS = Limits(workers=64)
# Cached artefacts up to this size are answered by the loop thread: every .info and
# .mod, most .zip files of small modules; larger ones go out by sendfile from a worker.
FAST_MAX_BYTES = 256 * 1024

_SUMDB = re.compile(r"^/sumdb/([a-z0-9.-]+(?::[0-9]+)?)/([A-Za-z0-9._/+!@-]*)$")


class MirrorServer(Server):
    """The mirror on the shared server core.

    + address: (host, port)
    + mirror: the cache, upstreams and limits
    + allow: client networks (None: everyone)
    + limits: the server's bounds (default ``MIRROR_LIMITS``)
    """

    server_name_header = "gotune-mirror"
    forbidden_message = "forbidden: client not in the mirror's allowlist"

    def __init__(
        self,
        address: tuple[str, int],
        mirror: Mirror,
        allow: list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.mirror = mirror
        self.client_buckets: dict[str, TokenBucket] = {}
        self.client_lock = threading.Lock()
        super().__init__(address, Handler, limits or MIRROR_LIMITS, allow, service=mirror)

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

    def fast_service_answer(self, head: Head, send_body: bool) -> bytes | None:
        """Cached artefacts up to ``FAST_MAX_BYTES`` (not while a per-client limit paces
        answers), counted as the handler counts them."""
        path = head.target
        if self.mirror.config.client_limit_rate or path.startswith("/sumdb/"):
            return None
        try:
            req = parse_request(path)
        except InvalidPath:
            return None
        answer = self.mirror.cached(req, FAST_MAX_BYTES)
        if answer is None or answer.data is None:
            return None
        self.count(req.kind, 200)
        self.count_served(len(answer.data) * send_body)
        return response(200, answer.content_type, answer.data, self.server_name_header,
                        send_body)


class Handler(BaseHandler):
    server: MirrorServer

    def do_GET(self) -> None:
        self._handle(send_body=True)

    def do_HEAD(self) -> None:
        self._handle(send_body=False)

    def _handle(self, send_body: bool) -> None:
        kind = "other"
        try:
            common = self.answer_common(send_body)
            if common is not None:
                kind, code = common
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
        self.server.count(kind, code)

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
    def _text(self, code: int, message: str, send_body: bool) -> int:
        line = message.replace("\n", " ").replace("\r", " ")[:1000] + "\n"
        return self._bytes(code, "text/plain; charset=utf-8", line.encode(), send_body)

    def _bytes(self, code: int, ctype: str, data: bytes, send_body: bool) -> int:
        self.headers_out(code, ctype, len(data))
        if send_body:
            self._pace(len(data))
            self.wfile.write(data)
            self.server.count_served(len(data))
        return code

    def _pace(self, n: int) -> None:
        bucket = self.server.client_bucket(self.client_address[0])
        if bucket is not None:
            bucket.acquire(n)

    def _file(self, answer: Answer, send_body: bool) -> int:
        assert answer.path is not None
        with open(answer.path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            self.headers_out(200, answer.content_type, size)
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
            self.server.count_served(sent)
        return 200

    def _relay(self, answer: Answer, send_body: bool) -> int:
        body = answer.body
        assert body is not None
        try:
            self.headers_out(200, answer.content_type, body.length)
            if not send_body:
                return 200
            try:
                while chunk := body.read():
                    self._pace(len(chunk))
                    self.wfile.write(chunk)
                    self.server.count_served(len(chunk))
            except UpstreamFailed:
                # Headers are out: the only honest signal left is a short body.
                self.close_connection = True
                traceback.print_exc(file=sys.stderr)
            return 200
        finally:
            body.close()


def run_forever(server: MirrorServer) -> None:
    """Serve until SIGTERM/SIGINT; in-flight temp files are cleaned at the next start."""
    serve_until_stopped(server, server.mirror.close)
