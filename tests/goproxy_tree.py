"""A local upstream for mirror tests and benchmarks: a GOPROXY tree built in Python.

``build_tree`` writes real module files (``.info``, ``.mod``, ``.zip`` whose
entries carry the ``module@version/`` prefix, and ``list``) that the real go
command accepts; ``StaticUpstream`` serves such a tree on loopback from a thread
and can inject faults per path (status codes, delays, truncation, slow bodies),
counting every request it receives.
"""

from __future__ import annotations

import io
import os
import socket
import threading
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from gotune.agent.mirror.modpath import escape, version_sort_key


@dataclass
class Module:
    path: str
    version: str
    files: dict[str, bytes]
    gomod: str | None = None  # None: the synthesized "module PATH" of +incompatible
    time: str = "2024-01-02T03:04:05Z"

    def mod_text(self) -> str:
        return self.gomod if self.gomod is not None else f"module {self.path}\n"


def go_module(
    path: str,
    version: str,
    package: str,
    body: str,
    extra: dict[str, bytes] | None = None,
    incompatible: bool = False,
    when: str = "2024-01-02T03:04:05Z",
) -> Module:
    """A module with one Go package at its root."""
    gomod = None if incompatible else f"module {path}\n\ngo 1.21\n"
    files = {f"{package}.go": f"package {package}\n\n{body}\n".encode()}
    if gomod is not None:
        files["go.mod"] = gomod.encode()
    files.update(extra or {})
    return Module(path, version, files, gomod, when)


def make_zip(module: Module) -> bytes:
    buf = io.BytesIO()
    prefix = f"{module.path}@{module.version}/"
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in sorted(module.files.items()):
            info = zipfile.ZipInfo(prefix + name, date_time=(2024, 1, 2, 3, 4, 5))
            # Random data does not compress; store it so building the tree stays fast.
            info.compress_type = zipfile.ZIP_STORED if len(data) > 1 << 20 else zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


def build_tree(root: Path, modules: list[Module]) -> Path:
    """Write ``modules`` as a GOPROXY tree under ``root`` (usable as file://root)."""
    versions: dict[str, list[str]] = {}
    for m in modules:
        vdir = root / escape(m.path) / "@v"
        vdir.mkdir(parents=True, exist_ok=True)
        ev = escape(m.version)
        (vdir / f"{ev}.info").write_text(f'{{"Version":"{m.version}","Time":"{m.time}"}}\n')
        (vdir / f"{ev}.mod").write_text(m.mod_text())
        (vdir / f"{ev}.zip").write_bytes(make_zip(m))
        versions.setdefault(m.path, []).append(m.version)
    for path, vs in versions.items():
        tagged = [v for v in vs if "-0." not in v and not v.startswith("v0.0.0-")]
        tagged.sort(key=version_sort_key)
        (root / escape(path) / "@v" / "list").write_text("".join(f"{v}\n" for v in tagged))
    return root


def standard_modules(big_bytes: int = 0) -> list[Module]:
    """Upper-case paths, a /v2 major, +incompatible, a pseudo-version, a big zip."""
    mods = [
        go_module("example.com/BigCorp/Lib", "v1.0.0", "lib", 'const Name = "BigCorp 1.0"'),
        go_module("example.com/BigCorp/Lib", "v1.1.0", "lib", 'const Name = "BigCorp 1.1"'),
        go_module("example.com/multi/v2", "v2.0.0", "multi", "func Major() int { return 2 }"),
        go_module("example.com/multi/v2", "v2.1.0", "multi", "func Major() int { return 21 }"),
        go_module("example.com/legacy", "v2.0.0+incompatible", "legacy",
                  'const Kind = "incompatible"', incompatible=True),
        go_module("example.com/pseudo", "v0.0.0-20240102030405-abcdefabcdef", "pseudo",
                  'const Commit = "abcdefabcdef"'),
    ]
    if big_bytes:
        mods.append(go_module("example.com/big", "v1.0.0", "big", "const Size = 1",
                              extra={"data.bin": os.urandom(big_bytes)}))
    return mods


APP_MAIN = """package main

import (
	"example.com/BigCorp/Lib"
	"example.com/big"
	"example.com/legacy"
	"example.com/multi/v2"
	"example.com/pseudo"
)

func main() {
	println(lib.Name, multi.Major(), legacy.Kind, pseudo.Commit, big.Size)
}
"""

APP_GOMOD = """module example.com/app

go 1.21

require (
	example.com/BigCorp/Lib v1.1.0
	example.com/big v1.0.0
	example.com/legacy v2.0.0+incompatible
	example.com/multi/v2 v2.1.0
	example.com/pseudo v0.0.0-20240102030405-abcdefabcdef
)
"""


@dataclass
class Fault:
    status: int | None = None  # answer this code instead of the file
    delay: float = 0.0  # seconds before answering
    truncate: int | None = None  # send only this many body bytes, then close
    rate: int | None = None  # body bytes per second (slow upstream)


@dataclass
class _State:
    root: Path
    faults: dict[str, Fault] = field(default_factory=dict)
    default: Fault = field(default_factory=Fault)
    requests: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        st = self.server.state
        path = unquote(self.path.split("?", 1)[0])  # go sends '!' as %21
        with st.lock:
            st.requests[path] += 1
            fault = st.faults.get(path, st.default)
        if fault.delay:
            time.sleep(fault.delay)
        if fault.status:
            self._send(fault.status, b"injected failure\n")
            return
        target = (st.root / path.lstrip("/")).resolve()
        if st.root not in target.parents or not target.is_file():
            self._send(404, b"not found\n")
            return
        data = target.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fault.truncate is not None:
            self.wfile.write(data[: fault.truncate])
            self.close_connection = True
            return
        if fault.rate:
            step = max(1, fault.rate // 20)
            for i in range(0, len(data), step):
                self.wfile.write(data[i : i + step])
                time.sleep(step / fault.rate)
            return
        self.wfile.write(data)

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    state: _State

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that hang up (the mirror killed mid-download) are expected here."""


class StaticUpstream:
    """Serve a GOPROXY tree on 127.0.0.1 from a background thread."""

    def __init__(self, root: Path) -> None:
        self.state = _State(root.resolve())
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.state = self.state
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def fault(self, path: str, fault: Fault) -> None:
        with self.state.lock:
            self.state.faults[path] = fault

    def fail_all(self, fault: Fault | None) -> None:
        with self.state.lock:
            self.state.default = fault or Fault()

    def latency(self, seconds: float) -> None:
        """Delay every answer (a WAN proxy's round trip instead of loopback's ~0)."""
        self.fail_all(Fault(delay=seconds) if seconds else None)

    def count(self, path: str) -> int:
        with self.state.lock:
            return self.state.requests[path]

    def total(self) -> int:
        with self.state.lock:
            return sum(self.state.requests.values())

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> StaticUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
