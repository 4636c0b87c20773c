"""Rates and token buckets for the mirror's limits (sizes: ``gotune.agent.units``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# A bucket may hold this many seconds of tokens: enough to absorb scheduling
# jitter, small enough that a burst after idle stays within 5% over a few seconds.
BURST_SECONDS = 0.05


def parse_rate(text: str, what: str = "rate") -> float:
    """A positive number (requests per second); ValueError if bad."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"invalid {what} {text!r}: not a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"invalid {what} {text!r}: must be a positive number")
    return value


class TokenBucket:
    """A token bucket that lets a caller go into debt and sleep it off.

    ``acquire(n)`` takes n tokens at once (n may exceed the capacity) and sleeps
    until the balance is non-negative again, so the long-run rate is exact
    whatever the chunk sizes; concurrent callers queue behind each other's debt.
    """

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        on_wait: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = float(rate)
        self.capacity = capacity if capacity is not None else max(1.0, rate * BURST_SECONDS)
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()
        self._on_wait = on_wait

    def acquire(self, n: float = 1.0) -> float:
        """Take ``n`` tokens, sleeping as needed; returns the seconds slept."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
            if self._on_wait is not None:
                self._on_wait(wait)
        return wait
