"""Who may read and write what in the team build cache: the rules between HTTP and the files.

- Everyone the server's allowlist admits may read (GET): an output's bytes are checked
  against its ID before they go out (``store.read_verified``).
- Only a client with the builders' token may write (PUT): the token is checked before
  any of the body is read; the body must hash to the OutputID it claims, else it is
  refused and counted (``tampered_total{where="put"}``).
- Writes stay within the host's SSD wear budget (the mirror's ``WearGuard``: at ``warn``
  a daily byte budget, at ``critical`` none) and the size cap (LRU eviction).

The HTTP server (``server``) asks ``check_put`` before it answers ``100 Continue`` or
reads a body, so a refused upload costs no transfer. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from gotune.agent.buildcache.metrics import Metrics
from gotune.agent.buildcache.store import Entry, Store, Tampered, valid_id
from gotune.agent.buildcache.token import TokenCheck, bearer
from gotune.agent.mirror.wearguard import LEDGER, WearGuard

# The largest output a PUT may carry: Go's biggest archives (a large module's .a, a
# test binary) are tens of MiB; 1 GiB is a mistake or an attack.
MAX_OBJECT_BYTES = 1 << 30


@dataclass(frozen=True)
class Config:
    """How one build cache is run.

    + cache_dir: its directory (``store`` layout)
    + max_cache_size: evict least recently used outputs above this many bytes
    + token_digest_file: the builders' token digest (None: the cache takes no writes)
    + wear_state: the wear check's state file (the write budget)
    """

    cache_dir: Path
    max_cache_size: int | None = None
    token_digest_file: Path | None = None
    wear_state: Path | None = None


@dataclass(frozen=True)
class Verdict:
    """An answer to a PUT: HTTP status, a one-line message, and its ``puts_total`` outcome."""

    code: int
    message: str
    outcome: str


class BuildCache:
    """The store, the token, the wear budget and the counters, without any HTTP."""

    def __init__(self, config: Config, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.store = Store(config.cache_dir, self.metrics, config.max_cache_size)
        self.guard = WearGuard(config.wear_state, self.store.root / LEDGER, self.metrics)
        self.tokens = TokenCheck(config.token_digest_file)

    # -- reads -------------------------------------------------------------------------
    def get(self, action: str) -> Entry | None:
        """The action's stored entry (a hit), or None (a miss); both are counted."""
        entry = None
        if valid_id(action):
            may_write, _ = self.guard.may_write()
            entry = self.store.lookup(action, may_write)
        self.metrics.inc("hits_total" if entry else "misses_total")
        return entry

    def read(self, entry: Entry) -> bytes | None:
        """The entry's output, checked; None when it turned out tampered (then gone)."""
        try:
            return self.store.read_verified(entry)
        except (Tampered, FileNotFoundError):
            return None

    def check_large(self, entry: Entry) -> bool:
        """Check a large output on disk before it is sent from the file."""
        try:
            self.store.verify_file(entry)
        except (Tampered, FileNotFoundError):
            return False
        return True

    # -- writes ------------------------------------------------------------------------
    def check_put(self, action: str, output: str | None, length: str | None,
                  authorization: str | None) -> Verdict | None:
        """Why a PUT is answered before its body is read (refused, or already stored);
        None when the body is wanted. Refusals are counted."""
        verdict = self._early(action, output, length, authorization)
        if verdict is not None:
            self.metrics.inc("puts_total", outcome=verdict.outcome)
        return verdict

    def _early(self, action: str, output: str | None, length: str | None,
               authorization: str | None) -> Verdict | None:
        if not valid_id(action) or output is None or not valid_id(output):
            return Verdict(400, "bad request: action and Gotune-Output-Id must be 64 hex "
                           "digits", "invalid")
        if not self.tokens.writable:
            return Verdict(403, "this build cache takes no writes (no builder token set)",
                           "refused")
        token = bearer(authorization)
        if token is None:
            self.metrics.inc("auth_failures_total", reason="missing")
            return Verdict(401, "a builder token is required to write", "refused")
        if not self.tokens.allows(token):
            self.metrics.inc("auth_failures_total", reason="wrong")
            return Verdict(403, "forbidden: not the builders' token", "refused")
        if length is None or not length.isdigit():
            return Verdict(411, "a PUT needs a Content-Length", "invalid")
        size = int(length)
        if size > MAX_OBJECT_BYTES or not self.store.fits(size):
            self.metrics.inc("not_cached_total", reason="size")
            return Verdict(413, f"{size} bytes is more than this cache keeps", "too_large")
        if self.store.has(action, output):
            return Verdict(200, "already stored", "exists")
        ok, why = self.guard.may_write(size)
        if not ok:
            self.metrics.inc("not_cached_total", reason="wear")
            return Verdict(507, f"not storing: {why}", "not_cached")
        return None

    def put(self, action: str, output: str, size: int, body: BinaryIO) -> Verdict:
        """Receive, check and store one output after ``check_put`` passed.

        Raises EOFError when the body ends early (the client went away): nothing is kept.
        """
        try:
            tmp = self.store.receive(output, size, body)
        except Tampered as exc:
            self.metrics.inc("puts_total", outcome="tampered")
            return Verdict(400, f"refused: {exc}", "tampered")
        self.metrics.inc("received_bytes_total", size)
        written = size if tmp is not None else 0
        self.guard.count_write(written)
        self.store.commit(action, output, size, tmp)
        self.guard.record_write(written, counted=written)
        self.metrics.inc("puts_total", outcome="stored")
        return Verdict(201, "stored", "stored")

    def refresh_gauges(self) -> None:
        """Bring the wear gauges up to date (before /metrics renders them)."""
        self.guard.may_write()

    def health(self) -> dict[str, Any]:
        stats = self.store.stats()
        hits, misses = self.metrics.total("hits_total"), self.metrics.total("misses_total")
        out: dict[str, Any] = {
            "status": "ok",
            "cache_dir": str(self.store.root),
            "cache_bytes": stats["bytes"],
            "objects": stats["objects"],
            "actions": stats["actions"],
            "max_cache_bytes": self.config.max_cache_size,
            "writable": self.tokens.writable,
            "hits": int(hits),
            "misses": int(misses),
            "hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
            "tampered": int(self.metrics.total("tampered_total")),
        }
        out.update(self.guard.health())
        return out
