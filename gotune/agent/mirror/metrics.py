"""The mirror's counters and gauges, rendered in the Prometheus text format (``prom``)."""

from __future__ import annotations

from gotune.agent import prom
from gotune.agent.httpserver import HTTP_METRICS
from gotune.agent.wear.state import WEAR_METRICS

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
    **HTTP_METRICS,
    **WEAR_METRICS,
}


class Metrics(prom.Metrics):
    """The mirror's counters and gauges (``DEFINITIONS``, prefixed ``gotune_mirror_``)."""

    def __init__(self) -> None:
        super().__init__(DEFINITIONS, PREFIX)
