"""The team build cache's files: Go build outputs by their SHA-256, and the action of each.

Layout (owned by the service user)::

    DIR/objects/<xx>/<output id>     an output's bytes; the name is their SHA-256 (hex)
    DIR/actions/<xx>/<action id>     "v1 <output id> <size> <put time ns>\\n"
    DIR/.gotune/writes.json          today's written bytes (the wear budget)

Every file is written as ``.tmp-*`` beside its final name, fsynced, renamed and its
directory fsynced (``gotune.agent.fsutil``). An output is published before the entry
that names it, so a crash (the server killed mid-put) leaves at worst a temp file,
deleted at the next start, or an output no entry names yet: never an entry whose
output is missing or partial. An entry whose output is gone is dropped at start.

Outputs are checked against their name when they arrive (``receive``: the body's
SHA-256 must be the OutputID the client claims) and each time they are served
(``read_verified``, ``verify_file``): an object whose bytes no longer match its name
(tampered, rotten) is deleted with the entries naming it, and counted.

LRU: the order of use lives in memory, seeded at start from each output's atime or
mtime; the on-disk atime is refreshed at most hourly, so a hit costs no write. When
the outputs pass ``max_bytes`` the least recently used go, with their entries.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from gotune.agent.fsutil import TMP_PREFIX, publish, temp_beside, write_atomic
from gotune.agent.prom import Metrics

# Go's cache keys: SHA-256 sums, written as 64 lower-case hex digits.
ID_RE = re.compile(r"^[0-9a-f]{64}$")
OBJECTS = "objects"
ACTIONS = "actions"
META_DIR = ".gotune"
# Refresh a served output's on-disk atime at most hourly (as Go's cache does with mtime):
# the LRU order survives a restart without a metadata write per hit.
TOUCH_INTERVAL = 3600.0
# Bytes read and hashed at a time while an output arrives or is checked.
CHUNK = 1 << 20
ENTRY_VERSION = "v1"


def valid_id(text: str) -> bool:
    """Whether ``text`` is an action or output ID as the cache names them."""
    return bool(ID_RE.match(text))


@dataclass(frozen=True)
class Entry:
    """What an action produced: its output's ID, size, when it was put, and the file."""

    action: str
    output: str
    size: int
    put_ns: int
    path: Path


@dataclass
class _Object:
    size: int
    touched: float  # last on-disk atime we know of
    actions: set[str] = field(default_factory=set)


class Tampered(Exception):
    """Bytes that do not hash to their OutputID; never stored, never served."""


class Store:
    """The outputs, the action entries and the in-memory LRU index.

    + root: the cache directory (created)
    + metrics: where sizes, writes, evictions and tampered objects are counted
    + max_bytes: evict least recently used outputs above this many bytes (None: never)
    """

    def __init__(self, root: Path, metrics: Metrics, max_bytes: int | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self.metrics = metrics
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._objects: OrderedDict[str, _Object] = OrderedDict()  # least recently used first
        self._actions: dict[str, tuple[str, int, int]] = {}  # action -> (output, size, put_ns)
        self.total_bytes = 0
        self.removed_tmp = 0
        self._scan()
        self.metrics.set("cache_max_bytes", float(max_bytes or 0))

    # -- paths -------------------------------------------------------------------------
    def object_path(self, output: str) -> Path:
        return self.root / OBJECTS / output[:2] / output

    def action_path(self, action: str) -> Path:
        return self.root / ACTIONS / action[:2] / action

    # -- start-up ----------------------------------------------------------------------
    def _files(self, kind: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """(name, entry) of each ID-named file under ``kind``; temp files are deleted."""
        base = self.root / kind
        if not base.is_dir():
            return
        for sub in os.scandir(base):
            if not sub.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(sub.path):
                if entry.name.startswith(TMP_PREFIX):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        self.removed_tmp += 1
                elif valid_id(entry.name) and entry.is_file(follow_symlinks=False):
                    yield entry.name, entry

    def _scan(self) -> None:
        """Index every output and entry; drop temp files and entries without an output."""
        found: list[tuple[float, str, int, float]] = []
        for name, entry in self._files(OBJECTS):
            st = entry.stat(follow_symlinks=False)
            found.append((max(st.st_atime, st.st_mtime), name, st.st_size, st.st_atime))
        for _, name, size, atime in sorted(found):
            self._objects[name] = _Object(size, atime)
            self.total_bytes += size
        for name, entry in self._files(ACTIONS):
            parsed = _parse_entry(Path(entry.path))
            obj = self._objects.get(parsed[0]) if parsed else None
            if parsed is None or obj is None or obj.size != parsed[1]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                continue
            self._actions[name] = parsed
            obj.actions.add(name)
        self._gauges()

    def _gauges(self) -> None:
        self.metrics.set("cache_bytes", float(self.total_bytes))
        self.metrics.set("objects", float(len(self._objects)))
        self.metrics.set("actions", float(len(self._actions)))

    # -- reading -----------------------------------------------------------------------
    def lookup(self, action: str, may_write: bool = True) -> Entry | None:
        """The action's entry when its output is here; marks the output used."""
        now = time.time()
        touch = False
        with self._lock:
            found = self._actions.get(action)
            obj = self._objects.get(found[0]) if found else None
            if found is None or obj is None:
                return None
            self._objects.move_to_end(found[0])
            if may_write and now - obj.touched > TOUCH_INTERVAL:
                obj.touched = now
                touch = True
        path = self.object_path(found[0])
        if touch:
            with contextlib.suppress(OSError):
                os.utime(path, (now, os.stat(path).st_mtime))
        return Entry(action, found[0], found[1], found[2], path)

    def peek(self, action: str) -> int | None:
        """The size of the action's output when it is here (nothing is marked used)."""
        with self._lock:
            found = self._actions.get(action)
            return found[1] if found and found[0] in self._objects else None

    def has(self, action: str, output: str) -> bool:
        """Whether ``action`` is stored with exactly this output."""
        with self._lock:
            found = self._actions.get(action)
            return found is not None and found[0] == output and found[0] in self._objects

    def read_verified(self, entry: Entry) -> bytes:
        """The output's bytes, checked against its ID; Tampered (and gone) if they differ."""
        try:
            data = entry.path.read_bytes()
        except FileNotFoundError:
            self._forget(entry.output)
            raise
        if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.output:
            self.drop_tampered(entry.output, "store")
            raise Tampered(f"{entry.output} does not match its contents")
        return data

    def verify_file(self, entry: Entry) -> None:
        """Check a (large) output against its ID by reading it through; Tampered if not."""
        digest = hashlib.sha256()
        size = 0
        try:
            with open(entry.path, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
        except FileNotFoundError:
            self._forget(entry.output)
            raise
        if size != entry.size or digest.hexdigest() != entry.output:
            self.drop_tampered(entry.output, "store")
            raise Tampered(f"{entry.output} does not match its contents")

    # -- writing -----------------------------------------------------------------------
    def fits(self, size: int) -> bool:
        """Whether an output of ``size`` bytes can be kept at all (within ``max_bytes``)."""
        return self.max_bytes is None or size <= self.max_bytes

    def receive(self, output: str, size: int, body: BinaryIO) -> Path | None:
        """Read ``size`` bytes of an output from ``body`` into a temp file beside its final
        name, hashing as they come: the temp file to ``commit``, or None when the output
        is already stored (the bytes are read and checked all the same).

        Raises Tampered when the bytes do not hash to ``output`` (counted, nothing kept),
        EOFError when the body ends early.
        """
        final = self.object_path(output)
        fd, tmp = temp_beside(final)
        digest = hashlib.sha256()
        left = size
        try:
            with os.fdopen(fd, "wb") as fh:
                while left > 0:
                    chunk = body.read(min(CHUNK, left))
                    if not chunk:
                        raise EOFError(f"the body ended {left} bytes early")
                    digest.update(chunk)
                    fh.write(chunk)
                    left -= len(chunk)
            if digest.hexdigest() != output:
                self.metrics.inc("tampered_total", where="put")
                raise Tampered("the body's SHA-256 is not its OutputID")
            with self._lock:
                present = output in self._objects
            if present:
                tmp.unlink()
                return None
            return tmp
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise

    def commit(self, action: str, output: str, size: int, tmp: Path | None) -> int:
        """Publish a received output (``tmp``; None: already stored), then the action's
        entry, and evict what no longer fits. Returns the bytes written to disk."""
        written = 0
        if tmp is not None:
            publish(tmp, self.object_path(output))
            written += size
        line = f"{ENTRY_VERSION} {output} {size} {time.time_ns()}\n"
        write_atomic(self.action_path(action), line)
        written += len(line)
        now = time.time()
        with self._lock:
            obj = self._objects.get(output)
            if obj is None:
                obj = self._objects[output] = _Object(size, now)
                self.total_bytes += size
            self._objects.move_to_end(output)
            old = self._actions.get(action)
            if old is not None and old[0] != output and old[0] in self._objects:
                self._objects[old[0]].actions.discard(action)
            self._actions[action] = (output, size, int(line.split()[3]))
            obj.actions.add(action)
        self.metrics.inc("cache_writes_total")
        self.metrics.inc("cache_written_bytes_total", written)
        self._evict(keep=output)
        return written

    def _evict(self, keep: str) -> None:
        """Remove least recently used outputs (never ``keep``) until they fit."""
        while True:
            with self._lock:
                if self.max_bytes is None or self.total_bytes <= self.max_bytes:
                    break
                victim = next((o for o in self._objects if o != keep), None)
                if victim is None:
                    break
            size = self._remove(victim)
            self.metrics.inc("evictions_total")
            self.metrics.inc("evicted_bytes_total", size)
        self._gauges()

    def drop_tampered(self, output: str, where: str) -> None:
        """Delete an output whose bytes do not match its ID, and the entries naming it."""
        self.metrics.inc("tampered_total", where=where)
        self._remove(output)
        self._gauges()

    def _forget(self, output: str) -> None:
        """An output vanished from disk (deleted by hand): drop it from the index."""
        self._remove(output)
        self._gauges()

    def _remove(self, output: str) -> int:
        """Delete an output and its entries (entries first: none may name a missing file)."""
        with self._lock:
            obj = self._objects.pop(output, None)
            if obj is None:
                return 0
            self.total_bytes -= obj.size
            for action in obj.actions:
                if self._actions.get(action, ("",))[0] == output:
                    del self._actions[action]
        for action in obj.actions:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.action_path(action))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.object_path(output))
        return obj.size

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"bytes": self.total_bytes, "objects": len(self._objects),
                    "actions": len(self._actions)}


def _parse_entry(path: Path) -> tuple[str, int, int] | None:
    """(output, size, put time ns) of an action entry file; None if damaged."""
    try:
        parts = path.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return None
    if len(parts) != 4 or parts[0] != ENTRY_VERSION or not valid_id(parts[1]):
        return None
    if not (parts[2].isdigit() and parts[3].isdigit()):
        return None
    return parts[1], int(parts[2]), int(parts[3])
