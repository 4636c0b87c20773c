"""The build cache's counters and gauges, rendered in the Prometheus text format (``prom``)."""

from __future__ import annotations

from gotune.agent import prom
from gotune.agent.httpserver import HTTP_METRICS
from gotune.agent.wear.state import WEAR_METRICS

PREFIX = "gotune_buildcache_"

# name -> (type, help). Every metric is declared here once; counters end in _total.
DEFINITIONS: dict[str, tuple[str, str]] = {
    "requests_total": ("counter", "Requests answered, by operation and HTTP status code."),
    "hits_total": ("counter", "GETs answered with a stored output."),
    "misses_total": ("counter", "GETs for an action the cache does not hold."),
    "served_bytes_total": ("counter", "Output bytes sent to clients."),
    "received_bytes_total": ("counter", "Output bytes received in PUTs."),
    "puts_total": ("counter", "PUTs, by outcome (stored, exists, refused, tampered, ...)."),
    "tampered_total": (
        "counter", "Outputs refused because their bytes do not hash to their OutputID, by "
        "where it was seen (put: arriving; store: on disk, when served)."
    ),
    "auth_failures_total": ("counter", "PUTs refused for their token, by reason."),
    "evictions_total": ("counter", "Outputs evicted to stay under --max-cache-size."),
    "evicted_bytes_total": ("counter", "Bytes of outputs evicted."),
    "cache_writes_total": ("counter", "Outputs and entries written to the cache."),
    "cache_written_bytes_total": ("counter", "Bytes written to the cache."),
    "not_cached_total": ("counter", "PUTs not kept, by reason (wear, size)."),
    "cache_bytes": ("gauge", "Bytes of outputs in the cache."),
    "cache_max_bytes": ("gauge", "The --max-cache-size limit (0: none)."),
    "objects": ("gauge", "Outputs in the cache."),
    "actions": ("gauge", "Action entries in the cache."),
    **HTTP_METRICS,
    **WEAR_METRICS,
}


class Metrics(prom.Metrics):
    """The build cache's counters and gauges (``DEFINITIONS``, prefixed ``gotune_buildcache_``)."""

    def __init__(self) -> None:
        super().__init__(DEFINITIONS, PREFIX)
