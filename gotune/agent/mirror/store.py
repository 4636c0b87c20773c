"""The cache directory: a GOPROXY tree written atomically, with LRU eviction.

Layout (usable as ``GOPROXY=file://DIR`` and by any static file server)::

    DIR/<escaped module>/@v/<escaped version>.{info,mod,zip}
    DIR/<escaped module>/@v/list     versions whose .mod is cached (as Go's own
                                     download cache writes it), sorted by semver
    DIR/.gotune/meta/<escaped module>/{list,latest}   upstream answers + fetch time
    DIR/.gotune/writes.json          today's written bytes (the wear budget)

Every file is written as ``.tmp-*`` in its final directory, fsynced, renamed, and
the directory fsynced: a crash leaves at worst a ``.tmp-*`` file, which no
request path can name (module path elements never start with a dot) and which
is deleted at the next start. ``.gotune`` cannot collide with a module either.

LRU: access times live in memory (seeded from each file's atime/mtime at start);
on-disk atime is refreshed at most once per TOUCH_INTERVAL so hits cost no
writes. Eviction removes whole versions (.info, .mod, .zip together), oldest
access first, until the artefacts fit under --max-cache-size.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gotune.agent.fsutil import TMP_PREFIX, publish, temp_beside, write_atomic
from gotune.agent.mirror.metrics import Metrics
from gotune.agent.mirror.modpath import KINDS, InvalidPath, Request, unescape, version_sort_key

# Go's limits for module files (cmd/go, golang.org/x/mod/zip): zip files and their
# uncompressed contents at most 500 MiB, go.mod at most 16 MiB.
MAX_ZIP_SIZE = 500 << 20
MAX_UNZIPPED_SIZE = 500 << 20
MAX_GO_MOD_SIZE = 16 << 20
# .info, list and @latest answers are small JSON/text; 1 MiB bounds a hostile upstream.
MAX_INFO_SIZE = 1 << 20
MAX_META_SIZE = 4 << 20
MAX_SIZE = {"zip": MAX_ZIP_SIZE, "mod": MAX_GO_MOD_SIZE, "info": MAX_INFO_SIZE,
            "list": MAX_META_SIZE, "latest": MAX_INFO_SIZE}
# Refresh a hit file's on-disk atime at most hourly (as Go's build cache does with
# mtime): LRU survives restarts without turning every hit into a metadata write.
TOUCH_INTERVAL = 3600.0
# Artefacts up to this size are fetched into memory, served from there and written
# by the commit thread: creating the temp file (a new inode, ~0.7 ms of kernel time
# on a busy ext4) and its directories then stays off the request path.
MEMORY_FILL_MAX = 1 << 20
# At most this many bytes of fetched, not yet committed artefacts stay in memory;
# beyond it (the disk is falling behind) fills write their temp file themselves.
PENDING_MEMORY_MAX = 64 << 20
# Nice value of the commit thread: its file creations and fsyncs cost the kernel
# about a millisecond per artefact, work that can wait while clients and upstream
# fetches want the CPU (served from memory meanwhile; nothing is visible until renamed).
COMMIT_NICE = 10
META_DIR = ".gotune"


class InvalidArtefact(Exception):
    """Upstream sent something that is not a valid module file; never cached."""


def validate(req: Request, path: Path) -> None:
    """Raise InvalidArtefact unless the fetched file is a complete, valid artefact."""
    size = path.stat().st_size
    _check_size(req, size)
    if req.kind == "zip":
        _validate_zip(req, path, size)
    else:
        _validate_small(req, path.read_bytes())


def validate_data(req: Request, data: bytes) -> None:
    """Like validate(), for an artefact fetched into memory."""
    _check_size(req, len(data))
    if req.kind == "zip":
        _validate_zip(req, io.BytesIO(data), len(data))
    else:
        _validate_small(req, data)


def _check_size(req: Request, size: int) -> None:
    if size > MAX_SIZE[req.kind]:
        raise InvalidArtefact(f"{req.kind} is {size} bytes, over Go's limit")


def _validate_small(req: Request, data: bytes) -> None:
    if req.kind == "info":
        try:
            info = json.loads(data)
        except ValueError as exc:
            raise InvalidArtefact(f".info is not JSON: {exc}") from None
        if not isinstance(info, dict) or info.get("Version") != req.version:
            raise InvalidArtefact(f".info does not describe {req.version}")
    elif req.kind == "mod":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArtefact("go.mod is not UTF-8") from None


def _validate_zip(req: Request, source: Path | io.BytesIO, size: int) -> None:
    prefix = f"{req.module}@{req.version}/"
    try:
        with zipfile.ZipFile(source) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InvalidArtefact(f"zip does not open: {exc}") from None
    total = 0
    for info in infos:
        name = info.filename
        if not name.startswith(prefix):
            raise InvalidArtefact(f"zip entry {name!r} is outside {prefix}")
        if "\\" in name or "/../" in f"/{name}/" or "/./" in f"/{name}/":
            raise InvalidArtefact(f"zip entry {name!r} has an invalid path")
        if info.header_offset + info.compress_size > size:
            raise InvalidArtefact(f"zip entry {name!r} runs past the end of the file")
        total += info.file_size
    if total > MAX_UNZIPPED_SIZE:
        raise InvalidArtefact(f"zip unpacks to {total} bytes, over Go's limit")


@dataclass
class _Commit:
    """One queued commit: a validated temp file, or bytes the commit thread writes."""

    req: Request
    source: Path | bytes
    on_write: Callable[[int], None]
    reserved: int = 0  # bytes of the in-memory budget held until committed


@dataclass
class _Version:
    sizes: dict[str, int] = field(default_factory=dict)
    atime: float = 0.0
    touched: float = 0.0  # last on-disk atime we know of


class Store:
    """The cache tree plus the in-memory LRU index."""

    def __init__(self, root: Path, metrics: Metrics, max_bytes: int | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self.meta_root = self.root / META_DIR / "meta"
        self.metrics = metrics
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._index: dict[tuple[str, str], _Version] = {}
        # Validated artefacts waiting for fsync + rename, by final path: a temp file or
        # the bytes themselves, served from there meanwhile, so clients never wait
        # for the disk.
        self._pending: dict[Path, Path | bytes] = {}
        self._pending_bytes = 0
        self._queue: queue.Queue[_Commit] = queue.Queue()
        self._committer: threading.Thread | None = None
        self.total_bytes = 0
        self.removed_tmp = 0
        self._scan()
        self.metrics.set("cache_max_bytes", float(max_bytes or 0))

    # -- paths -------------------------------------------------------------------------
    def _inside(self, path: Path) -> Path:
        normal = os.path.normpath(path)
        if os.path.commonpath([normal, str(self.root)]) != str(self.root):
            raise InvalidPath("path outside the cache")
        return Path(normal)

    def path_for(self, req: Request) -> Path:
        return self._inside(
            self.root / req.escaped_module / "@v" / f"{req.escaped_version}.{req.kind}"
        )

    def list_path(self, req: Request) -> Path:
        return self._inside(self.root / req.escaped_module / "@v" / "list")

    def meta_path(self, req: Request) -> Path:
        return self._inside(self.meta_root / req.escaped_module / req.kind)

    # -- start-up ----------------------------------------------------------------------
    def _scan(self) -> None:
        """Delete leftover temp files and index every cached artefact."""
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(TMP_PREFIX)]
            for name in filenames:
                full = os.path.join(dirpath, name)
                if name.startswith(TMP_PREFIX):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(full)
                        self.removed_tmp += 1
                    continue
                if os.path.basename(dirpath) != "@v" or META_DIR in Path(dirpath).parts:
                    continue
                stem, _, ext = name.rpartition(".")
                if ext not in KINDS or not stem:
                    continue
                module_dir = os.path.relpath(os.path.dirname(dirpath), self.root)
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    continue
                entry = self._index.setdefault((module_dir, stem), _Version())
                entry.sizes[ext] = st.st_size
                seen = max(st.st_atime, st.st_mtime)
                entry.atime = max(entry.atime, seen)
                entry.touched = max(entry.touched, st.st_atime)
                self.total_bytes += st.st_size
        self.metrics.set("cache_bytes", float(self.total_bytes))

    # -- lookups -----------------------------------------------------------------------
    def current(self, req: Request) -> Path | bytes | None:
        """The committed file, else a validated artefact awaiting commit (its temp
        file or its bytes), else None."""
        path = self.path_for(req)
        with self._lock:
            pending = self._pending.get(path)
        if isinstance(pending, bytes):
            return pending
        # The commit thread renames before it drops the pending entry, so one stat
        # after the pending check cannot miss an artefact committed meanwhile.
        if path.is_file():
            return path
        return self._pending_file(path, pending)

    @staticmethod
    def _pending_file(path: Path, pending: Path | None) -> Path | None:
        """The pending temp file while it is there, else the file it was renamed to."""
        if pending is not None and pending.is_file():
            return pending
        return path if pending is not None and path.is_file() else None

    def lookup(self, req: Request, may_write: bool) -> Path | bytes | None:
        """The cached artefact (its file, or its bytes while the commit is pending),
        or None; records the access."""
        path = self.path_for(req)
        with self._lock:
            pending = self._pending.get(path)
        if isinstance(pending, bytes):
            return pending
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return self._pending_file(path, pending)
        now = time.time()
        key = (req.escaped_module, req.escaped_version)
        touch = False
        with self._lock:
            entry = self._index.get(key)
            if entry is None:  # written by another process (sync) since start
                entry = self._index[key] = _Version()
            if req.kind not in entry.sizes:
                entry.sizes[req.kind] = st.st_size
                self.total_bytes += st.st_size
                self.metrics.set("cache_bytes", float(self.total_bytes))
            entry.atime = now
            if may_write and now - entry.touched > TOUCH_INTERVAL:
                entry.touched = now
                touch = True
        if touch:
            with contextlib.suppress(OSError):
                os.utime(path, (now, st.st_mtime))
        return path

    def has(self, req: Request) -> bool:
        return self.current(req) is not None

    def local_list(self, req: Request) -> bytes | None:
        """The versions cached for the module (Go's download-cache list), None if none."""
        try:
            return self.list_path(req).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    # -- writes ------------------------------------------------------------------------
    def open_tmp(self, req: Request) -> tuple[int, Path]:
        """A temp file in the artefact's final directory (same filesystem for rename)."""
        return temp_beside(self.path_for(req))

    def publish(self, req: Request, tmp: Path, on_write: Callable[[int], None]) -> Path:
        """Queue a validated temp file for commit; returns the path to serve it from now."""
        self._enqueue(_Commit(req, tmp, on_write))
        return tmp

    def reserve(self, size: int) -> bool:
        """Take ``size`` bytes of the in-memory budget for a fill; False when spent."""
        with self._lock:
            if self._pending_bytes + size > PENDING_MEMORY_MAX:
                return False
            self._pending_bytes += size
            return True

    def release(self, size: int) -> None:
        """Give back a reservation that publish_data() did not take over."""
        with self._lock:
            self._pending_bytes -= size

    def publish_data(
        self, req: Request, data: bytes, on_write: Callable[[int], None], reserved: int
    ) -> bytes:
        """Queue a validated artefact held in memory for writing and commit; it is served
        from memory until then. Takes over ``reserved`` bytes of the budget."""
        self._enqueue(_Commit(req, data, on_write, reserved))
        return data

    def _enqueue(self, item: _Commit) -> None:
        with self._lock:
            self._pending[self.path_for(item.req)] = item.source
            if self._committer is None:
                self._committer = threading.Thread(
                    target=self._commit_loop, name="mirror-commit", daemon=True
                )
                self._committer.start()
        self._queue.put(item)

    def _commit_loop(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # not Linux, or not allowed
            # On Linux, PRIO_PROCESS with a thread id sets that thread's nice value only.
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), COMMIT_NICE)
        while True:
            item = self._queue.get()
            tmp: Path | None = None
            try:
                if isinstance(item.source, Path):
                    tmp = item.source
                else:
                    tmp = self._write_tmp(item.req, item.source)
                self.commit(item.req, tmp, item.on_write)
            except OSError as exc:
                print(f"gotune mirror: cannot commit {self.path_for(item.req)}: {exc}",
                      file=sys.stderr)
                if tmp is not None:
                    with contextlib.suppress(FileNotFoundError):
                        tmp.unlink()
            finally:
                with self._lock:
                    self._pending.pop(self.path_for(item.req), None)
                    self._pending_bytes -= item.reserved
                self._queue.task_done()

    def _write_tmp(self, req: Request, data: bytes) -> Path:
        """Write ``data`` to a new temp file beside the artefact (commit() fsyncs it)."""
        fd, tmp = self.open_tmp(req)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        return tmp

    def drain(self) -> None:
        """Wait until every queued artefact is committed (sync, shutdown, tests)."""
        self._queue.join()

    def commit(self, req: Request, tmp: Path, on_write: Callable[[int], None]) -> Path:
        """Atomically publish a validated temp file: fsync, rename, fsync the directory,
        update the list, evict if needed."""
        final = self.path_for(req)
        size = tmp.stat().st_size
        publish(tmp, final)
        written = size
        key = (req.escaped_module, req.escaped_version)
        with self._lock:
            entry = self._index.setdefault(key, _Version())
            self.total_bytes += size - entry.sizes.get(req.kind, 0)
            entry.sizes[req.kind] = size
            entry.atime = entry.touched = time.time()
            stale_dirs = self._evict(keep=key)
            self.metrics.set("cache_bytes", float(self.total_bytes))
        evicted = len(stale_dirs)
        if req.kind == "mod":
            stale_dirs.append(final.parent)
        # Lists are rewritten (with their own fsyncs) outside the index lock, so that
        # lookups never wait for the disk; only the commit thread writes them.
        for vdir in dict.fromkeys(stale_dirs):
            written += self._rewrite_list(vdir)
        self.metrics.inc("cache_writes_total")
        self.metrics.inc("cache_written_bytes_total", written)
        if evicted:
            self.metrics.inc("evictions_total", evicted)
        on_write(written)
        return final

    def _rewrite_list(self, vdir: Path) -> int:
        versions = []
        for name in os.listdir(vdir):
            if name.endswith(".mod") and not name.startswith(TMP_PREFIX):
                with contextlib.suppress(InvalidPath):
                    versions.append(unescape(name[: -len(".mod")]))
        versions.sort(key=version_sort_key)
        data = "".join(f"{v}\n" for v in versions).encode()
        write_atomic(vdir / "list", data)
        return len(data)

    def _evict(self, keep: tuple[str, str]) -> list[Path]:
        """Remove least recently used versions until under max_bytes (lock held);
        returns the @v directory of each evicted version (their lists need rewriting)."""
        if self.max_bytes is None or self.total_bytes <= self.max_bytes:
            return []
        order = sorted((e.atime, k) for k, e in self._index.items() if k != keep)
        touched_dirs: list[Path] = []
        for _, key in order:
            if self.total_bytes <= self.max_bytes:
                break
            entry = self._index.pop(key)
            vdir = self.root / key[0] / "@v"
            for kind, size in entry.sizes.items():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(vdir / f"{key[1]}.{kind}")
                self.total_bytes -= size
            touched_dirs.append(vdir)
        return touched_dirs

    def fits(self, size: int) -> bool:
        """Whether one artefact of ``size`` bytes can be kept at all."""
        return self.max_bytes is None or size <= self.max_bytes

    # -- list/@latest answers ------------------------------------------------------------
    def meta_get(self, req: Request) -> tuple[bytes, float] | None:
        path = self.meta_path(req)
        try:
            return path.read_bytes(), path.stat().st_mtime
        except (FileNotFoundError, NotADirectoryError):
            return None

    def meta_put(self, req: Request, data: bytes) -> None:
        write_atomic(self.meta_path(req), data)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"versions": len(self._index), "bytes": self.total_bytes}


def load_ledger(path: Path) -> tuple[str, int]:
    """Today's write ledger ``(day, bytes)``; a missing or bad file counts as nothing."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return str(data["day"]), int(data["bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        return "", 0
