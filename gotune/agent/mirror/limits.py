"""Sizes with curl-style suffixes and token buckets for rate limits."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

# A bucket may hold this many seconds of tokens: enough to absorb scheduling
# jitter, small enough that a burst after idle stays within 5% over a few seconds.
BURST_SECONDS = 0.05

_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtT]?)(i?[bB])?\s*$")
_MULT = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str, what: str = "size") -> int:
    """``512K`` -> 524288, ``8M`` -> 8388608 (curl's binary suffixes); ValueError if bad."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"invalid {what} {text!r} (use a number with an optional K, M, G suffix)")
    value = float(m.group(1)) * _MULT[m.group(2).lower()]
    if value <= 0:
        raise ValueError(f"invalid {what} {text!r}: must be positive")
    return int(value)


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
