"""The build cache's HTTP server: ``/cache/<action>``, ``/healthz`` and ``/metrics``.

- ``GET /cache/<action id>``: 200 with the output (checked against its ID first) and
  ``Gotune-Output-Id`` (hex), ``Gotune-Put-Time`` (ns); 404 when not held. ``HEAD``
  the same without the body.
- ``PUT /cache/<action id>`` with ``Gotune-Output-Id``, ``Content-Length`` and
  ``Authorization: Bearer <builder token>``: 201 stored, 200 already stored; 400 bad
  IDs or a body that does not hash to its OutputID; 401 no token, 403 a wrong one (or
  a cache that takes no writes); 411, 413; 507 when the wear budget is spent. With
  ``Expect: 100-continue`` every refusal comes before the body is sent.
- 403 for a client outside ``--allow``; 503 for an error inside the cache. Never 500.

Connections, threads and timeouts are the shared core's (``gotune.agent.httpserver``);
its loop answers /healthz, /metrics, misses and outputs up to ``FAST_MAX_BYTES``
(most compiled packages) itself, so a cold build's stream of small requests never
waits for a worker. Larger outputs are checked, then sent with sendfile(2).
"""

from __future__ import annotations

import ipaddress
import sys
import traceback
from collections.abc import Callable, Iterable

from gotune.agent.buildcache.cache import BuildCache, Verdict
from gotune.agent.buildcache.store import Entry
from gotune.agent.httpserver import Handler as BaseHandler
from gotune.agent.httpserver import (
    Head,
    Limits,
    Server,
    response,
    serve_until_stopped,
    text_response,
)

CACHE_PREFIX = "/cache/"
OUTPUT_HEADER = "Gotune-Output-Id"
TIME_HEADER = "Gotune-Put-Time"
OCTETS = "application/octet-stream"
# Outputs up to this size are read, checked and sent by the loop thread: most of a
# build's compiled packages; hashing 256 KiB takes ~0.2 ms.
FAST_MAX_BYTES = 256 * 1024
# Outputs up to this size are checked and sent from memory by a worker; larger ones
# are checked by reading them through, then sent from the file with sendfile(2).
IN_MEMORY_MAX_BYTES = 16 << 20


def hit_headers(entry: Entry) -> list[tuple[str, str]]:
    return [(OUTPUT_HEADER, entry.output), (TIME_HEADER, str(entry.put_ns))]


class BuildcacheServer(Server):
    """The build cache on the shared server core.

    + address: (host, port)
    + cache: the store, token and budget
    + allow: client networks (None: everyone)
    + limits: the server's bounds (default: the core's)
    """

    server_name_header = "gotune-buildcache"
    forbidden_message = "forbidden: client not in the build cache's allowlist"
    request_label = "op"

    def __init__(
        self,
        address: tuple[str, int],
        cache: BuildCache,
        allow: list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.cache = cache
        super().__init__(address, Handler, limits, allow, service=cache)

    def fast_service_answer(self, head: Head, send_body: bool) -> bytes | None:
        """Misses and hits up to ``FAST_MAX_BYTES``, counted as a worker counts them."""
        op = head.method.lower()
        name = self.server_name_header
        if not head.target.startswith(CACHE_PREFIX):
            return None
        action = head.target[len(CACHE_PREFIX):]
        size = self.cache.store.peek(action)
        if size is not None and size > FAST_MAX_BYTES:
            return None  # a worker sends it from the file
        entry = self.cache.get(action)
        data: bytes | None = b""
        if entry is not None and send_body:
            data = self.cache.read(entry)
        if entry is None or data is None:
            self.count(op, 404)
            return text_response(404, "not in the build cache", name, send_body)
        self.count(op, 200)
        self.count_served(len(data))
        return response(200, OCTETS, data, name, send_body, headers=hit_headers(entry),
                        length=entry.size)


class Handler(BaseHandler):
    server: BuildcacheServer

    def do_GET(self) -> None:
        self._guarded("get", lambda: self._get(send_body=True))

    def do_HEAD(self) -> None:
        self._guarded("head", lambda: self._get(send_body=False))

    def do_PUT(self) -> None:
        self._guarded("put", self._put)

    # Set when handle_expect_100 already checked the PUT (before "100 Continue").
    _checked = False

    def _guarded(self, op: str, answer: Callable[[], int]) -> None:
        try:
            common = self.answer_common(op != "head")
            if common is not None:
                op, code = common
            else:
                code = answer()
        except (BrokenPipeError, ConnectionResetError, TimeoutError, EOFError):
            self.close_connection = True
            code = 499  # the client went away (nginx's convention); nothing to answer
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            code = self.text(503, f"build cache error: {exc.__class__.__name__}", op != "head")
        self.server.count(op, code)

    def _action(self) -> str | None:
        return self.path[len(CACHE_PREFIX):] if self.path.startswith(CACHE_PREFIX) else None

    def _bytes(self, code: int, ctype: str, data: bytes, send_body: bool,
               extra: Iterable[tuple[str, str]] = ()) -> int:
        self.headers_out(code, ctype, len(data), extra)
        if send_body:
            self.wfile.write(data)
            self.server.count_served(len(data))
        return code

    def _get(self, send_body: bool) -> int:
        action = self._action()
        entry = self.server.cache.get(action) if action is not None else None
        if entry is None:
            return self.text(404, "not in the build cache", send_body)
        if not send_body:
            self.headers_out(200, OCTETS, entry.size, hit_headers(entry))
            return 200
        if entry.size <= IN_MEMORY_MAX_BYTES:
            data = self.server.cache.read(entry)
            if data is None:
                return self.text(404, "not in the build cache", send_body)
            return self._bytes(200, OCTETS, data, send_body, hit_headers(entry))
        if not self.server.cache.check_large(entry):
            return self.text(404, "not in the build cache", send_body)
        with open(entry.path, "rb") as fh:
            self.headers_out(200, OCTETS, entry.size, hit_headers(entry))
            sent = self.connection.sendfile(fh)
        self.server.count_served(sent)
        return 200

    def _verdict(self) -> Verdict | None:
        action = self._action()
        if action is None:
            return Verdict(404, "not found: PUT /cache/<action id>", "invalid")
        return self.server.cache.check_put(
            action, self.headers.get(OUTPUT_HEADER), self.headers.get("Content-Length"),
            self.headers.get("Authorization"),
        )

    def _answer(self, verdict: Verdict, body_unread: bool) -> int:
        extra = [("WWW-Authenticate", "Bearer")] if verdict.code == 401 else []
        if body_unread:  # the body may still come: never read it, close after answering
            self.close_connection = True
            extra.append(("Connection", "close"))
        line = (verdict.message + "\n").encode()
        self.headers_out(verdict.code, "text/plain; charset=utf-8", len(line), extra)
        self.wfile.write(line)
        return verdict.code

    def handle_expect_100(self) -> bool:
        """Refuse (or say "already stored") before the client sends the body."""
        if self.command == "PUT":
            if not self.allowed():
                refused = Verdict(403, self.server.forbidden_message, "refused")
                self.server.count("other", self._answer(refused, True))
                return False
            verdict = self._verdict()
            if verdict is not None:
                self.server.count("put", self._answer(verdict, True))
                return False
            self._checked = True
        return super().handle_expect_100()

    def _put(self) -> int:
        pending = int(self.headers.get("Content-Length") or 0) > 0
        verdict = None if self._checked else self._verdict()
        if verdict is not None:
            return self._answer(verdict, pending)
        action = self._action()
        output = self.headers.get(OUTPUT_HEADER)
        assert action is not None and output is not None
        verdict = self.server.cache.put(action, output,
                                        int(self.headers["Content-Length"]),
                                        self.rfile)  # type: ignore[arg-type]
        return self._answer(verdict, False)


def run_forever(server: BuildcacheServer) -> None:
    """Serve until SIGTERM/SIGINT; temp files of unfinished puts go at the next start."""
    serve_until_stopped(server, lambda: None)
