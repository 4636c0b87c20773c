"""The mirror's counters and gauges, rendered in the Prometheus text format (``prom``)."""

from __future__ import annotations

import threading

from gotune.agent.prom import Exposition

PREFIX = "gotune_mirror_"

# name -> (type, help). Every metric is declared here once; counters end in _total.
DEFINITIONS: dict[str, tuple[str, str]] = {
    "requests_total": ("counter", "Requests answered, by artefact kind and HTTP status code."),
    "cache_hits_total": ("counter", "Requests answered from the cache, by artefact kind."),
    "cache_misses_total": ("counter", "Requests that needed upstream, by artefact kind."),
    "served_bytes_total": ("counter", "Response body bytes sent to clients."),
    "upstream_requests_total": ("counter", "Requests sent to upstream proxies."),
    "upstream_fetched_bytes_total": ("counter", "Body bytes received from upstream proxies."),
    "upstream_errors_total": ("counter", "Upstream failures (not 404/410), by reason."),
    "rate_limit_wait_seconds_total": (
        "counter", "Seconds spent waiting on the upstream rate limits, by limit."
    ),
    "client_limit_wait_seconds_total": (
        "counter", "Seconds spent waiting on the per-client limit."
    ),
    "stale_served_total": ("counter", "list/@latest answers served stale because upstream failed."),
    "cache_writes_total": ("counter", "Artefacts written to the cache."),
    "cache_written_bytes_total": ("counter", "Bytes written to the cache."),
    "evictions_total": ("counter", "Artefact versions evicted to stay under --max-cache-size."),
    "invalid_upstream_total": ("counter", "Upstream artefacts rejected by validation."),
    "not_cached_total": ("counter", "Misses relayed without caching, by reason."),
    "prefetches_total": ("counter", "Zips fetched ahead after their .info was asked, by outcome."),
    "cache_bytes": ("gauge", "Bytes of artefacts in the cache."),
    "cache_max_bytes": ("gauge", "The --max-cache-size limit (0: none)."),
    "caching_enabled": ("gauge", "1 when new artefacts are cached, 0 when they are relayed only."),
    "wear_status": ("gauge", "1 for the current SSD wear status of the cache's host."),
    "daily_written_bytes": ("gauge", "Bytes written to the cache today (UTC)."),
    "daily_write_budget_bytes": ("gauge", "Today's write budget at wear status warn (-1: none)."),
}

LabelKey = tuple[tuple[str, str], ...]


class Metrics:
    """Thread-safe counters/gauges keyed by name and labels."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, dict[LabelKey, float]] = {name: {} for name in DEFINITIONS}

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._values[name]
            series[key] = series.get(key, 0.0) + value

    def set(self, name: str, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[name][key] = value

    def replace(self, name: str, values: dict[LabelKey, float]) -> None:
        """Set a gauge's whole label set at once (e.g. one-hot status gauges)."""
        with self._lock:
            self._values[name] = dict(values)

    def get(self, name: str, **labels: str) -> float:
        key = tuple(sorted(labels.items()))
        with self._lock:
            return self._values[name].get(key, 0.0)

    def total(self, name: str) -> float:
        with self._lock:
            return sum(self._values[name].values())

    def render(self) -> str:
        """Every declared metric in the Prometheus text format (/metrics).

        A metric nothing has touched yet shows 0, except the one-hot ``*_status``
        gauges, which show no sample until a status is known.
        """
        with self._lock:
            snapshot = {name: dict(series) for name, series in self._values.items()}
        ex = Exposition()
        for name, (kind, help_text) in DEFINITIONS.items():
            ex.declare(PREFIX + name, kind, help_text)
            series = snapshot[name] or ({(): 0.0} if not name.endswith("_status") else {})
            for key, value in sorted(series.items()):
                ex.add(PREFIX + name, kind, help_text, key, value)
        return ex.text()
