"""Whether the mirror (or the build cache) may write new artefacts, given the host's SSD wear.

- ok / unknown: cache everything (unknown means no wear check has run).
- warn: cache new artefacts only while today's (UTC) written bytes stay within
  the state's daily write budget; beyond it, relay without caching.
- critical: write nothing at all (no artefacts, no lists, no atime touches);
  cached artefacts are still served and misses are relayed.
The state file is re-read when its mtime or size changes (checked at most once a second).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gotune.agent.fsutil import write_atomic
from gotune.agent.mirror.store import load_ledger
from gotune.agent.prom import Metrics
from gotune.agent.wear.state import (
    STATUSES,
    WARN_WRITE_BUDGET_BYTES,
    WearState,
    read_wear_state,
)

# The state file is stat()ed at most this often: the wear check runs hourly or
# daily, so a second's delay is nothing, and hot request paths skip the syscall.
RECHECK_SECONDS = 1.0
# Where a guarded cache keeps today's written bytes, inside its directory.
LEDGER = ".gotune/writes.json"


def _today(now: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(now))


class WearGuard:
    """Reads the wear state and keeps the daily write ledger."""

    def __init__(
        self,
        state_path: Path | None,
        ledger_path: Path,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state_path = state_path
        self.ledger_path = ledger_path
        self.metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._checked = float("-inf")
        self._state = WearState("unknown", "no wear state configured", None, 0.0)
        self._day, self._written = load_ledger(ledger_path)
        self.refresh()

    def refresh(self) -> WearState:
        """Re-read the state file if it changed; returns the current state."""
        if self.state_path is None:
            return self._state
        now = time.monotonic()
        if now - self._checked < RECHECK_SECONDS:
            return self._state
        self._checked = now
        try:
            st = os.stat(self.state_path)
            stamp: tuple[float, int] | None = (st.st_mtime, st.st_size)
        except OSError:
            stamp = None
        with self._lock:
            if stamp != self._stamp or stamp is None:
                self._state = read_wear_state(self.state_path)
                self._stamp = stamp
            state = self._state
        self.metrics.replace(
            "wear_status", {(("status", s),): float(s == state.status) for s in STATUSES}
        )
        return state

    def _budget(self, state: WearState) -> int | None:
        if state.status != "warn":
            return None
        if state.daily_write_budget_bytes is None:
            return WARN_WRITE_BUDGET_BYTES
        return state.daily_write_budget_bytes

    def _written_today(self) -> int:
        today = _today(self._clock())
        if self._day != today:
            self._day, self._written = today, 0
        return self._written

    def may_write(self, size: int | None = None) -> tuple[bool, str]:
        """Whether an artefact of ``size`` bytes (None: unknown yet) may be cached."""
        state = self.refresh()
        with self._lock:
            written = self._written_today()
        budget = self._budget(state)
        self.metrics.set("daily_written_bytes", float(written))
        self.metrics.set("daily_write_budget_bytes", float(budget if budget is not None else -1))
        if state.status == "critical":
            ok, why = False, f"wear critical: not caching ({state.reason})".rstrip(" ()")
        elif budget is not None and written + (size or 0) > budget:
            ok, why = False, f"wear warn: daily write budget {budget} bytes spent ({written})"
        elif budget is not None:
            ok, why = True, f"wear warn: caching within {budget} bytes/day ({written} used)"
        else:
            ok, why = True, f"wear {state.status}: caching"
        self.metrics.set("caching_enabled", 1.0 if ok else 0.0)
        return ok, why

    def count_write(self, n: int) -> None:
        """Count ``n`` bytes as written today before the commit thread writes them, so
        the budget and /healthz see them at once; record_write() persists the ledger.
        Should that commit fail, the bytes stay counted: the budget errs towards less."""
        with self._lock:
            self._written_today()
            self._written += n
            written = self._written
        self.metrics.set("daily_written_bytes", float(written))

    def record_write(self, n: int, counted: int = 0) -> None:
        """Count bytes written today (``counted`` of the ``n`` were already counted by
        count_write()) and persist the ledger (skipped at critical)."""
        with self._lock:
            self._written_today()
            self._written += n - counted
            day, written = self._day, self._written
        self.metrics.set("daily_written_bytes", float(written))
        if self._state.status in ("warn",):
            # The ledger only matters while a budget applies; at ok it is not written.
            write_atomic(self.ledger_path, json.dumps({"day": day, "bytes": written}).encode())

    def health(self) -> dict[str, Any]:
        ok, why = self.may_write()
        state = self._state
        with self._lock:
            written = self._written_today()
        return {
            "caching": ok,
            "caching_reason": why,
            "wear": state.to_json(),
            "daily_written_bytes": written,
            "daily_write_budget_bytes": self._budget(state),
        }
